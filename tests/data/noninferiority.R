# Golden values for non-inferiority and Holm-adjusted comparisons
# (tests/analysis/test_mrmc_noninferiority.py).
#
# Peer: MRMCaov 0.3.0 (github.com/brian-j-smith/MRMCaov, commit
# d79e49bcef42ef2a17195aae84ca84ae569f8702), R 4.2 (stats::pt, stats::qt, stats::p.adjust).
# Run from the repository root:
#   MRMCAOV_LIB=LIB Rscript tests/data/noninferiority.R
# It writes tests/data/vandyke_three.csv and tests/data/noninferiority.json.
#
# MRMCaov has no non-inferiority test; the convention computed here from its mrmc() summary
# (estimate, standard error and df of the difference) is the FDA / CONSORT one: with margin M
# and reference treatment "ref", non-inferiority of "test" is shown when the lower limit of the
# two-sided (1 - alpha) interval of (test - ref) exceeds -M; the matching one-sided p-value is
#   P(T > (estimate + M) / se), T ~ t(df) (normal for FRRC, whose df MRMCaov leaves out),
# compared with alpha / 2. MRMCaov names the difference "1 - 2" (first level minus second);
# test - ref is its estimate with the sign reversed when the reference is the first level.
#
# Holm: p.adjust(p, "holm") on MRMCaov's pairwise p-values of vandyke_three.csv: VanDyke with a
# third treatment, treatment 1's rating raised by one (at most 5) on every case whose ID is a
# multiple of 3 (fully crossed, treatments listed 1, 2, 3).

.libPaths(c(Sys.getenv("MRMCAOV_LIB", "/work/r/lib-common"), .libPaths()))
suppressPackageStartupMessages({
  library(MRMCaov)
  library(jsonlite)
})

alpha <- 0.05
vandyke <- read.csv("tests/data/vandyke.csv")
franken <- read.csv("tests/data/franken.csv")
third <- vandyke[vandyke$treatment == 1, ]
third$treatment <- 3L
bump <- third$case %% 3 == 0
third$rating[bump] <- pmin(third$rating[bump] + 1L, 5L)
three <- rbind(vandyke, third)
three <- three[order(three$treatment, three$reader, three$case), ]
write.csv(three, "tests/data/vandyke_three.csv", row.names = FALSE, quote = FALSE)

fit <- function(d, factors) {
  d$reader <- factor(d$reader)
  d$treatment <- factor(d$treatment)
  d$case <- factor(d$case)
  assign("mrmc_input", d, envir = globalenv())
  call <- switch(factors,
    RRRC = quote(mrmc(empirical_auc(truth, rating), treatment, reader, case,
                      data = mrmc_input)),
    FRRC = quote(mrmc(empirical_auc(truth, rating), treatment, fixed(reader), case,
                      data = mrmc_input)),
    RRFC = quote(mrmc(empirical_auc(truth, rating), treatment, reader, fixed(case),
                      data = mrmc_input))
  )
  summary(eval(call, globalenv()))$test_diffs
}

noninferiority <- function(name, d, factors, margin, reference) {
  td <- fit(d, factors)
  # Two treatments: one comparison, "1 - 2".
  sign <- if (reference == "1") -1 else 1
  est <- sign * td$Estimate[1]
  se <- td$StdErr[1]
  df <- if (is.null(td$df)) NULL else td$df[1]
  test <- if (reference == "1") "2" else "1"
  q <- if (is.null(df)) qnorm(1 - alpha / 2) else qt(1 - alpha / 2, df)
  statistic <- (est + margin) / se
  p <- if (is.null(df)) pnorm(statistic, lower.tail = FALSE) else
    pt(statistic, df, lower.tail = FALSE)
  list(
    data = name, factors = factors, margin = margin, reference = reference,
    pair = paste(test, "-", reference), estimate = est, se = se, df = df,
    lower = est - q * se, statistic = statistic, p_value = p,
    non_inferior = (est - q * se) > -margin
  )
}

cases <- list()
for (name in c("vandyke.csv", "franken.csv")) {
  d <- if (name == "vandyke.csv") vandyke else franken
  for (factors in c("RRRC", "FRRC", "RRFC")) {
    for (margin in c(0.02, 0.05, 0.1)) {
      for (reference in c("1", "2")) {
        cases[[length(cases) + 1]] <- noninferiority(name, d, factors, margin, reference)
      }
    }
  }
}

holm <- list()
for (factors in c("RRRC", "FRRC", "RRFC")) {
  td <- fit(three, factors)
  holm[[factors]] <- list(
    pair = td$Comparison, estimate = td$Estimate, se = td$StdErr,
    p_value = td$`p-value`, p_adjusted = p.adjust(td$`p-value`, "holm")
  )
}

golden <- list(
  peer = "MRMCaov 0.3.0",
  peer_commit = "d79e49bcef42ef2a17195aae84ca84ae569f8702",
  r_version = R.version.string,
  script = "tests/data/noninferiority.R",
  alpha = alpha,
  noninferiority = cases,
  holm = list(data = "vandyke_three.csv", analyses = holm)
)
writeLines(toJSON(golden, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           "tests/data/noninferiority.json")
