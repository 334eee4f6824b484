# Golden values for the design-aware OR analysis (tests/analysis/test_mrmc_designs.py).
#
# Peer: MRMCaov 0.3.0 (github.com/brian-j-smith/MRMCaov, commit
# d79e49bcef42ef2a17195aae84ca84ae569f8702), installed from that tree with
#   R CMD INSTALL --no-docs --no-multiarch -l LIB MRMCaov
# after removing `trust` from Imports in DESCRIPTION (Debian has no r-cran-trust; it is used
# only by the binormal curve fits, which nothing here calls).
# Run from the repository root:
#   MRMCAOV_LIB=LIB Rscript tests/data/mrmcaov_designs.R
# It writes the derived data sets to tests/data/mrmc_designs/*.csv (columns
# reader,treatment,case,truth,rating) and every analysis to tests/data/mrmcaov_designs.json.
#
# Data sets (all from MRMCaov's VanDyke and tests/data/franken.csv):
#   *_splitplot      reader groups read disjoint case blocks under both treatments
#                    (VanDyke: readers 1-2 the odd cases, readers 3-5 the even ones;
#                     Franken: readers 1-2 the odd cases, readers 3-4 the even ones; both files
#                     list the cases sorted by truth, so contiguous blocks would not hold
#                     both truth classes)
#   *_missing        8% of the reads deleted at random (set.seed(20261203))
#   vandyke_case2    VanDyke with case = case2 (cases nested in readers)
#   vandyke_case3    VanDyke with case = case3 (cases nested in treatments)
#   *_call3          rating replaced by the call rating >= 3 (0/1), for binary_sens/binary_spec

.libPaths(c(Sys.getenv("MRMCAOV_LIB", "/work/r/lib-mrmc"), .libPaths()))
suppressPackageStartupMessages({
  library(MRMCaov)
  library(jsonlite)
})

out_dir <- "tests/data/mrmc_designs"
dir.create(out_dir, showWarnings = FALSE)

data(VanDyke, package = "MRMCaov")
vandyke <- data.frame(
  reader = VanDyke$reader, treatment = VanDyke$treatment, case = VanDyke$case,
  truth = VanDyke$truth, rating = VanDyke$rating, case2 = VanDyke$case2,
  case3 = VanDyke$case3
)
franken <- read.csv("tests/data/franken.csv")

long <- function(d) {
  d <- d[order(d$treatment, d$reader, d$case), c("reader", "treatment", "case", "truth", "rating")]
  rownames(d) <- NULL
  d
}

split_plot <- function(d, groups) {
  keep <- rep(FALSE, nrow(d))
  for (g in groups) keep <- keep | (d$reader %in% g$readers & d$case %in% g$cases)
  long(d[keep, ])
}

set.seed(20261203)
datasets <- list(
  vandyke_splitplot = split_plot(vandyke, list(
    list(readers = 1:2, cases = seq(1, 113, 2)), list(readers = 3:5, cases = seq(2, 114, 2))
  )),
  franken_splitplot = split_plot(franken, list(
    list(readers = 1:2, cases = seq(1, 99, 2)), list(readers = 3:4, cases = seq(2, 100, 2))
  )),
  vandyke_missing = long(vandyke[-sample(nrow(vandyke), round(0.08 * nrow(vandyke))), ]),
  franken_missing = long(franken[-sample(nrow(franken), round(0.08 * nrow(franken))), ]),
  vandyke_case2 = long(transform(vandyke, case = case2)),
  vandyke_case3 = long(transform(vandyke, case = case3)),
  vandyke_call3 = long(transform(vandyke, rating = as.numeric(rating >= 3))),
  franken_call3 = long(transform(franken, rating = as.numeric(rating >= 3)))
)
datasets$vandyke_splitplot_call3 <- transform(
  datasets$vandyke_splitplot, rating = as.numeric(rating >= 3)
)
for (name in names(datasets)) {
  write.csv(datasets[[name]], file.path(out_dir, paste0(name, ".csv")), row.names = FALSE,
            quote = FALSE)
}

fit <- function(d, metric, cov, factors) {
  d$reader <- factor(d$reader)
  d$treatment <- factor(d$treatment)
  d$case <- factor(d$case)
  # mrmc() evaluates its data and cov arguments by name from the global environment.
  assign("mrmc_input", d, envir = globalenv())
  assign("mrmc_cov", switch(cov, jackknife = jackknife, unbiased = unbiased, DeLong = DeLong),
         envir = globalenv())
  resp <- switch(metric,
    empirical_auc = quote(empirical_auc(truth, rating)),
    sensitivity = quote(binary_sens(truth, rating)),
    specificity = quote(binary_spec(truth, rating))
  )
  call <- switch(factors,
    RRRC = bquote(mrmc(.(resp), treatment, reader, case, data = mrmc_input, cov = mrmc_cov)),
    FRRC = bquote(mrmc(.(resp), treatment, fixed(reader), case, data = mrmc_input, cov = mrmc_cov)),
    RRFC = bquote(mrmc(.(resp), treatment, reader, fixed(case), data = mrmc_input, cov = mrmc_cov))
  )
  eval(call, globalenv())
}

record <- function(name, metric, cov, factors) {
  est <- fit(datasets[[name]], metric, cov, factors)
  s <- summary(est)
  te <- s$test_equality
  td <- s$test_diffs
  tm <- s$test_means
  vc <- s$vcov_comps
  res <- list(
    data = paste0(name, ".csv"), metric = metric, cov = cov, factors = factors,
    mrmcaov_design = est$design,
    treatment_value = as.list(setNames(tm$Estimate, rownames(tm))),
    reader_value = lapply(seq_len(nrow(est$data)), function(i) list(
      treatment = as.character(est$data$treatment[i]),
      reader = as.character(est$data$reader[i]),
      value = est$data[[1]][i]
    )),
    global_test = list(
      statistic = if (factors == "FRRC") te$X2 else te$F,
      df1 = if (factors == "FRRC") te$df else te$df1,
      df2 = if (factors == "FRRC") NULL else te$df2,
      p_value = te$`p-value`
    ),
    differences = lapply(seq_len(nrow(td)), function(i) list(
      pair = td$Comparison[i], estimate = td$Estimate[i], se = td$StdErr[i],
      df = if (is.null(td$df)) NULL else td$df[i],
      ci_lower = td$CI[i, 1], ci_upper = td$CI[i, 2], p_value = td$`p-value`[i]
    )),
    single_treatment = setNames(lapply(seq_len(nrow(tm)), function(i) list(
      estimate = tm$Estimate[i], se = tm$StdErr[i],
      df = if (is.null(tm$df)) NULL else tm$df[i],
      ci_lower = tm$CI[i, 1], ci_upper = tm$CI[i, 2]
    )), rownames(tm))
  )
  if (!is.null(vc)) {
    res$var_components <- list(
      var_R = vc["reader", "Estimate"], var_TR = vc["treatment:reader", "Estimate"],
      cov1 = vc["Cov1", "Estimate"], cov2 = vc["Cov2", "Estimate"],
      cov3 = vc["Cov3", "Estimate"], var_error = vc["Error", "Estimate"]
    )
  }
  if (factors == "RRRC") res$cov_matrix <- unclass(est$cov)[, , drop = FALSE]
  res
}

analyses <- list()
add <- function(name, metric, cov, factors) {
  key <- paste(name, metric, cov, factors, sep = "/")
  analyses[[key]] <<- record(name, metric, cov, factors)
}
for (name in c("vandyke_splitplot", "franken_splitplot", "vandyke_missing", "franken_missing",
               "vandyke_case2", "vandyke_case3")) {
  for (cov in c("jackknife", "unbiased")) {
    for (factors in c("RRRC", "FRRC", "RRFC")) {
      if (!(factors == "RRFC" && cov == "unbiased")) add(name, "empirical_auc", cov, factors)
    }
  }
}
for (name in c("vandyke_call3", "franken_call3", "vandyke_splitplot_call3")) {
  for (metric in c("sensitivity", "specificity")) {
    for (factors in c("RRRC", "FRRC", "RRFC")) add(name, metric, "jackknife", factors)
  }
}

delong_error <- tryCatch(
  {fit(datasets$vandyke_splitplot, "empirical_auc", "DeLong", "RRRC"); NA},
  error = function(e) conditionMessage(e)
)

golden <- list(
  peer = "MRMCaov 0.3.0",
  peer_commit = "d79e49bcef42ef2a17195aae84ca84ae569f8702",
  r_version = R.version.string,
  script = "tests/data/mrmcaov_designs.R",
  delong_partially_paired_error = delong_error,
  analyses = analyses
)
writeLines(toJSON(golden, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           "tests/data/mrmcaov_designs.json")
