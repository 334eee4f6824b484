# Golden values for the bootstrap covariance (tests/analysis/test_mrmc_bootstrap.py).
#
# Peer: RJafroc 2.1.3 (github.com/dpc10ster/RJafroc, commit
# 44b0e39ebb0adda0d28d675850cbcf97d4d85d3f), R 4.2. Run from the repository root:
#   RJAFROC_LIB=LIB Rscript tests/data/bootstrap_golden.R
# It writes tests/data/bootstrap_golden.json.
#
# RJafroc 2.1.3 has no bootstrap that runs: UtilORVarComp(covEstMethod = "bootstrap") stops
# with "code needs fixing: SmpldFom2ORCov bootstrap", and the bootstrap of the version-0.0.1 code
# it keeps (StOldCode(method = "OR", covEstMethod = "bootstrap") -> EstimateVarCov, file
# R/StOldCode.R) calls FOM2ORVarComp(fomBsArray, varInflFactor = FALSE) without its `flag`
# argument ("argument "flag" is missing") and then reads the lower-case fields Cov$var, Cov$cov1,
# ... of a list whose fields are Var, Cov1, ... (NULL). Both messages are recorded in the JSON.
# This script runs EstimateVarCov's bootstrap for the Wilcoxon figure of merit line for line
# (R/StOldCode.R, `covEstMethod == "bootstrap"`, last branch: per replicate
# kBs1 <- ceiling(runif(K1) * K1) over the K1 non-diseased cases, then
# kBs2 <- ceiling(runif(K2) * K2) over the K2 diseased ones, every reader and modality on the
# same replicate, the FOM from RJafroc:::MyFOMOldCode) with those two defects corrected
# (flag = "IJ", upper-case fields), and records each replicate's drawn cases so the Python
# bootstrap can be fed the very same replicates. FOM2ORVarComp with varInflFactor = FALSE is
# R's cov() over the replicates (divisor nBoots - 1), averaged over the OR blocks.
#
# Cases are recorded by their IDs in tests/data/vandyke.csv / franken.csv: RJafroc's
# dataset02 / dataset03 list the non-diseased cases, then the diseased ones, each in the
# order of those IDs (checked below, rating for rating).

.libPaths(c(Sys.getenv("RJAFROC_LIB", "/work/r/lib-common"), .libPaths()))
suppressPackageStartupMessages({
  library(RJafroc)
  library(jsonlite)
})

n_boots <- 200L  # RJafroc's default nBoots
seed <- 20261203L

case_ids <- function(ds, long) {
  # IDs of the non-diseased and diseased cases in RJafroc's case order, after checking that
  # every rating of the RJafroc dataset equals the CSV's.
  neg <- sort(unique(long$case[long$truth == 0]))
  pos <- sort(unique(long$case[long$truth == 1]))
  NL <- ds$ratings$NL
  LL <- ds$ratings$LL
  for (i in seq_len(dim(NL)[1])) for (j in seq_len(dim(NL)[2])) {
    d <- long[long$treatment == i & long$reader == j, ]
    stopifnot(all(NL[i, j, seq_along(neg), 1] == d$rating[match(neg, d$case)]))
    stopifnot(all(LL[i, j, seq_along(pos), 1] == d$rating[match(pos, d$case)]))
  }
  list(negative = neg, positive = pos)
}

bootstrap <- function(ds, ids) {
  NL <- ds$ratings$NL
  LL <- ds$ratings$LL
  lesionVector <- ds$lesions$perCase
  lesionID <- ds$lesions$IDs
  lesionWeight <- ds$lesions$weights
  maxNL <- dim(NL)[4]
  I <- dim(NL)[1]
  J <- dim(NL)[2]
  K <- dim(NL)[3]
  K2 <- dim(LL)[3]
  K1 <- K - K2
  nBoots <- n_boots
  set.seed(seed)
  drawn_neg <- matrix(0L, nBoots, K1)
  drawn_pos <- matrix(0L, nBoots, K2)
  fomBsArray <- array(dim = c(I, J, nBoots))
  for (b in 1:nBoots) {
    kBs1 <- ceiling(runif(K1) * K1)
    kBs2 <- ceiling(runif(K2) * K2)
    drawn_neg[b, ] <- ids$negative[kBs1]
    drawn_pos[b, ] <- ids$positive[kBs2]
    for (i in 1:I) {
      for (j in 1:J) {
        nlBs <- NL[i, j, c(kBs1, kBs2 + K1), ]
        llBs <- LL[i, j, kBs2, ]
        dim(nlBs) <- c(K, maxNL)
        dim(llBs) <- c(K2, max(lesionVector))
        fomBsArray[i, j, b] <- RJafroc:::MyFOMOldCode(
          nlBs, llBs, lesionVector[kBs2], lesionID[kBs2, ], lesionWeight[kBs2, ], maxNL,
          "Wilcoxon"
        )
      }
    }
  }
  Cov <- RJafroc:::FOM2ORVarComp(fomBsArray, varInflFactor = FALSE, flag = "IJ")
  list(
    n_boots = nBoots, seed = seed,
    negative_cases = drawn_neg, positive_cases = drawn_pos,
    var_error = Cov$Var, cov1 = Cov$Cov1, cov2 = Cov$Cov2, cov3 = Cov$Cov3,
    fom = unclass(UtilFigureOfMerit(ds, FOM = "Wilcoxon"))
  )
}

err <- function(expr) tryCatch({expr; NA}, error = function(e) conditionMessage(e))
t0 <- proc.time()[["elapsed"]]
golden <- list(
  peer = "RJafroc 2.1.3",
  peer_commit = "44b0e39ebb0adda0d28d675850cbcf97d4d85d3f",
  r_version = R.version.string,
  script = "tests/data/bootstrap_golden.R",
  utilorvarcomp_bootstrap_error = err(
    UtilORVarComp(dataset02, FOM = "Wilcoxon", covEstMethod = "bootstrap", nBoots = 200, seed = 1)
  ),
  stoldcode_bootstrap_error = err(
    StOldCode(dataset02, FOM = "Wilcoxon", method = "OR", covEstMethod = "bootstrap")
  ),
  datasets = list(
    vandyke = c(list(data = "vandyke.csv"), bootstrap(
      dataset02, case_ids(dataset02, read.csv("tests/data/vandyke.csv"))
    )),
    franken = c(list(data = "franken.csv"), bootstrap(
      dataset03, case_ids(dataset03, read.csv("tests/data/franken.csv"))
    ))
  )
)
golden$r_seconds <- proc.time()[["elapsed"]] - t0
writeLines(toJSON(golden, auto_unbox = TRUE, digits = NA, null = "null"),
           "tests/data/bootstrap_golden.json")
