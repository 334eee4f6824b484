# Golden values for analysis.power from RJafroc 2.1.3 SsPowerGivenJK and SsSampleSizeKGivenJ.
#
# RJafroc 2.1.3 = github.com/dpc10ster/RJafroc commit 44b0e39ebb0adda0d28d675850cbcf97d4d85d3f,
# installed in /work/r/lib-common (R 4.2.2). Run from the repository root:
#   Rscript tests/data/rjafroc_power.R
# Writes tests/data/power_sim_pilot.csv (a seeded simulated pilot, exported in the project's MRMC
# CSV shape) and tests/data/rjafroc_power.json.
#
# Pilots: dataset02 (Van Dyke) = tests/data/vandyke.csv, dataset03 (Franken) =
# tests/data/franken.csv (the correspondence, modality index 1 = treatment 1, is checked below
# rating for rating), and "sim", built here. FOM "Wilcoxon" (the empirical AUC), jackknife.

.libPaths(c("/work/r/lib-common", .libPaths()))
suppressPackageStartupMessages(library(RJafroc))
library(jsonlite)

read_long <- function(path) read.csv(path)

# The CSV of a two-treatment ROC dataset, rows sorted by treatment, reader, case; negatives are
# cases 1..K1, positives K1+1..K1+K2 (RJafroc's NL holds the negatives, LL the positives).
to_long <- function(ds) {
  NL <- ds$ratings$NL[, , , 1, drop = FALSE]
  LL <- ds$ratings$LL[, , , 1, drop = FALSE]
  I <- dim(NL)[1]; J <- dim(NL)[2]; K <- dim(NL)[3]; K2 <- dim(LL)[3]; K1 <- K - K2
  rows <- list()
  for (i in 1:I) for (j in 1:J) {
    rows[[length(rows) + 1]] <- data.frame(
      reader = j, treatment = i, case = 1:K, truth = c(rep(0, K1), rep(1, K2)),
      rating = c(NL[i, j, 1:K1, 1], LL[i, j, 1:K2, 1]))
  }
  do.call(rbind, rows)
}

check_same <- function(ds, path) {
  csv <- read_long(path)
  mine <- to_long(ds)
  key <- function(d) paste(d$treatment, d$reader, d$case)
  # The repository CSVs number cases as the source packages do; compare per
  # (treatment, reader, truth) the sorted ratings and the per-case order within truth class.
  for (i in unique(mine$treatment)) for (j in unique(mine$reader)) for (t in 0:1) {
    a <- mine$rating[mine$treatment == i & mine$reader == j & mine$truth == t]
    b <- csv$rating[csv$treatment == i & csv$reader == j & csv$truth == t]
    stopifnot(length(a) == length(b), all(a == b))
  }
}
check_same(dataset02, "tests/data/vandyke.csv")
check_same(dataset03, "tests/data/franken.csv")

# Simulated pilot: 2 treatments, 4 readers, 30 negative and 20 positive cases, Roe-Metz-like
# latent ratings (reader, treatment x reader, case, treatment x case, reader x case and error
# effects), rounded to 2 decimals so that the CSV carries them exactly.
set.seed(20261203)
I <- 2; J <- 4; K1 <- 30; K2 <- 20
mu <- c(1.2, 1.5)
sim_ratings <- function(n, shift) {
  R <- rnorm(J, sd = sqrt(0.011)); TR <- matrix(rnorm(I * J, sd = sqrt(0.011)), I, J)
  C <- rnorm(n, sd = sqrt(0.3)); TC <- matrix(rnorm(I * n, sd = sqrt(0.3)), I, n)
  RC <- matrix(rnorm(J * n, sd = sqrt(0.2)), J, n)
  x <- array(0, c(I, J, n))
  for (i in 1:I) for (j in 1:J) {
    x[i, j, ] <- round(shift[i] + R[j] + TR[i, j] + C + TC[i, ] + RC[j, ] +
                         rnorm(n, sd = sqrt(0.2)), 2)
  }
  x
}
NL <- sim_ratings(K1, c(0, 0))
LL <- sim_ratings(K2, mu)
sim <- Df2RJafrocDataset(NL, LL)
write.csv(to_long(sim), "tests/data/power_sim_pilot.csv", row.names = FALSE, quote = FALSE)

pilots <- list(vandyke = dataset02, franken = dataset03, sim = sim)

# Variance components each pilot enters the power formulas with (St, method OR, jackknife).
components <- lapply(pilots, function(ds) {
  st <- St(ds, FOM = "Wilcoxon", method = "OR")
  vc <- st$ANOVA$VarCom
  list(VarR = vc["VarR", 1], VarTR = vc["VarTR", 1], Cov1 = vc["Cov1", 1],
       Cov2 = vc["Cov2", 1], Cov3 = vc["Cov3", 1], Var = vc["Var", 1],
       KStar = dim(ds$ratings$NL)[3],
       trtMeanDiff = as.numeric(st$FOMs$trtMeanDiffs))
})

first <- function(x) as.numeric(x[[1]])

power <- list()
for (name in names(pilots)) for (factors in c("RRRC", "FRRC", "RRFC"))
  for (J in c(4, 6, 10)) for (K in c(50, 114, 251)) for (d in c(0.03, 0.05, 0.08))
    for (alpha in c(0.05, 0.01)) {
      r <- SsPowerGivenJK(pilots[[name]], FOM = "Wilcoxon", J = J, K = K, effectSize = d,
                          method = "OR", analysisOption = factors, alpha = alpha)
      power[[length(power) + 1]] <- list(
        pilot = name, factors = factors, readers = J, cases = K, effect = d, alpha = alpha,
        power = first(r[1]), ncp = first(r[2]),
        df2 = if (is.na(r[[3]])) NA_real_ else first(r[3]), critical = first(r[4]))
    }

# method = "DBM" (UseDBMHB2004 = FALSE) converts the DBM mean squares to OR components; with the
# jackknife they are the same components, so the power is the same (differences recorded).
dbm_vs_or <- list()
for (name in names(pilots)) for (factors in c("RRRC", "FRRC", "RRFC")) {
  a <- SsPowerGivenJK(pilots[[name]], FOM = "Wilcoxon", J = 6, K = 114, effectSize = 0.05,
                      method = "OR", analysisOption = factors)
  b <- SsPowerGivenJK(pilots[[name]], FOM = "Wilcoxon", J = 6, K = 114, effectSize = 0.05,
                      method = "DBM", analysisOption = factors)
  h <- SsPowerGivenJK(pilots[[name]], FOM = "Wilcoxon", J = 6, K = 114, effectSize = 0.05,
                      method = "DBM", UseDBMHB2004 = TRUE, analysisOption = factors)
  dbm_vs_or[[length(dbm_vs_or) + 1]] <- list(
    pilot = name, factors = factors, power_or = first(a[1]), power_dbm = first(b[1]),
    power_dbm_hb2004 = first(h[1]))
}

# SsSampleSizeKGivenJ: the smallest K (searched from 2 up, stopping after K = 2001) whose power
# passes the target. For RRFC, RJafroc 2.1.3's searchNumCasesOR returns the bare K (its if/else
# chain misses the RRFC branch), so no power comes back; the power at that K is recomputed here
# with SsPowerGivenJK.
sample_size <- list()
for (name in names(pilots)) for (factors in c("RRRC", "FRRC", "RRFC"))
  for (J in c(4, 6, 10)) for (d in c(0.05, 0.08)) for (alpha in c(0.05, 0.01))
    for (target in c(0.8, 0.9)) {
      r <- SsSampleSizeKGivenJ(pilots[[name]], FOM = "Wilcoxon", J = J, effectSize = d,
                               method = "OR", alpha = alpha, desiredPower = target,
                               analysisOption = factors)
      if (is.data.frame(r)) {
        K <- first(r[1]); p <- first(r[2]); bare <- FALSE
      } else {
        K <- as.numeric(r); bare <- TRUE
        p <- first(SsPowerGivenJK(pilots[[name]], FOM = "Wilcoxon", J = J, K = K,
                                  effectSize = d, method = "OR", analysisOption = factors,
                                  alpha = alpha)[1])
      }
      sample_size[[length(sample_size) + 1]] <- list(
        pilot = name, factors = factors, readers = J, effect = d, alpha = alpha,
        target_power = target, cases = K, power = p, bare_k = bare)
    }

out <- list(
  rjafroc = as.character(packageVersion("RJafroc")),
  rjafroc_commit = "44b0e39ebb0adda0d28d675850cbcf97d4d85d3f",
  r = R.version.string,
  components = components,
  power = power,
  dbm_vs_or = dbm_vs_or,
  sample_size = sample_size
)
write_json(out, "tests/data/rjafroc_power.json", digits = NA, na = "null", auto_unbox = TRUE, pretty = TRUE)
