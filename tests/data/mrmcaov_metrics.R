# Golden values for partial and binormal AUCs in the OR analysis
# (tests/analysis/test_mrmc_metrics.py).
#
# Peer: MRMCaov 0.3.0 (github.com/brian-j-smith/MRMCaov, commit
# d79e49bcef42ef2a17195aae84ca84ae569f8702) with its dependency trust 0.1-8, both installed
# from source with `R CMD INSTALL -l LIB` (trust first). Run from the repository root:
#   MRMCAOV_LIB=LIB Rscript tests/data/mrmcaov_metrics.R
# It writes tests/data/mrmc_designs/simulated_missing.csv and tests/data/mrmcaov_metrics.json.
#
# Data sets:
#   vandyke            tests/data/vandyke.csv (MRMCaov's VanDyke)
#   simulated_missing  2 treatments x 4 readers x 60 cases (24 positive), ratings 1-5 cut from
#                      binormal latent scores (set.seed(20261203), see below), then 10% of the
#                      reads deleted at random: a partially paired factorial design.
# Each analysis is mrmc(<metric>(truth, rating, ...), treatment, reader, case, cov = jackknife),
# with fixed(reader) for FRRC; the JSON records the metric values, the covariance matrix,
# variance components, global test, differences and single-treatment intervals. It also
# records the errors MRMCaov gives for DeLong and unbiased covariance of a partial AUC, the
# binormal fits (a, b, AUC) of every reader x treatment of VanDyke with the log likelihood and
# gradient where trust stopped, and one fit whose likelihood has no maximum (below); for the
# binormal likelihood-ratio (PROPROC) AUC, binormalLR_auc, the full-area analyses, the partial
# ones or the error MRMCaov stops with, MRMCaov's fit of every reader x treatment and of each of
# its jackknife samples.

.libPaths(c(Sys.getenv("MRMCAOV_LIB", "/work/r/lib-common"), .libPaths()))
suppressPackageStartupMessages({
  library(MRMCaov)
  library(jsonlite)
})

vandyke <- read.csv("tests/data/vandyke.csv")

set.seed(20261203)
simulate <- function() {
  n_pos <- 24
  n_neg <- 36
  rows <- list()
  case_effect <- c(rnorm(n_pos, 1.6, 0.6), rnorm(n_neg, 0, 0.6))
  truth <- c(rep(1, n_pos), rep(0, n_neg))
  for (treatment in 1:2) {
    for (reader in 1:4) {
      shift <- 0.3 * (treatment == 2) + rnorm(1, 0, 0.25)
      latent <- case_effect + shift * truth + rnorm(n_pos + n_neg, 0, 0.8)
      rating <- as.numeric(cut(latent, c(-Inf, -0.2, 0.5, 1.0, 1.7, Inf)))
      rows[[length(rows) + 1]] <- data.frame(
        reader = reader, treatment = treatment, case = seq_along(truth), truth = truth,
        rating = rating
      )
    }
  }
  d <- do.call(rbind, rows)
  d <- d[-sample(nrow(d), round(0.10 * nrow(d))), ]
  d <- d[order(d$treatment, d$reader, d$case), ]
  rownames(d) <- NULL
  d
}
simulated <- simulate()
write.csv(simulated, "tests/data/mrmc_designs/simulated_missing.csv", row.names = FALSE,
          quote = FALSE)
datasets <- list(vandyke = vandyke, simulated_missing = simulated)

metric_call <- function(metric, partial, min, max, normalize) {
  f <- as.name(metric)
  if (is.null(partial)) {
    bquote(.(f)(truth, rating))
  } else {
    bquote(.(f)(truth, rating, partial = .(partial), min = .(min), max = .(max),
                normalize = .(normalize)))
  }
}

fit <- function(d, resp, factors, cov = jackknife) {
  d$reader <- factor(d$reader)
  d$treatment <- factor(d$treatment)
  d$case <- factor(d$case)
  # mrmc() evaluates its data and cov arguments by name from the global environment.
  assign("mrmc_input", d, envir = globalenv())
  assign("mrmc_cov", cov, envir = globalenv())
  call <- switch(factors,
    RRRC = bquote(mrmc(.(resp), treatment, reader, case, data = mrmc_input, cov = mrmc_cov)),
    FRRC = bquote(mrmc(.(resp), treatment, fixed(reader), case, data = mrmc_input,
                       cov = mrmc_cov))
  )
  suppressWarnings(eval(call, globalenv()))
}

record <- function(name, metric, partial, min, max, normalize, factors) {
  resp <- metric_call(metric, partial, min, max, normalize)
  est <- fit(datasets[[name]], resp, factors)
  s <- summary(est)
  te <- s$test_equality
  td <- s$test_diffs
  tm <- s$test_means
  vc <- s$vcov_comps
  list(
    data = name, metric = metric,
    partial = if (is.null(partial)) NULL else
      list(kind = partial, min = min, max = max, normalize = normalize),
    factors = factors, call = paste(deparse(resp), collapse = " "),
    reader_value = lapply(seq_len(nrow(est$data)), function(i) list(
      treatment = as.character(est$data$treatment[i]),
      reader = as.character(est$data$reader[i]),
      value = est$data[[1]][i]
    )),
    treatment_value = as.list(setNames(tm$Estimate, rownames(tm))),
    var_components = list(
      var_R = vc["reader", "Estimate"], var_TR = vc["treatment:reader", "Estimate"],
      cov1 = vc["Cov1", "Estimate"], cov2 = vc["Cov2", "Estimate"],
      cov3 = vc["Cov3", "Estimate"], var_error = vc["Error", "Estimate"]
    ),
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
    )), rownames(tm)),
    cov_matrix = unclass(est$cov)[, , drop = FALSE]
  )
}

analyses <- list()
add <- function(name, metric, partial = NULL, min = 0, max = 1, normalize = FALSE,
                factors = "RRRC") {
  key <- paste(name, metric, if (is.null(partial)) "full" else
    paste(partial, min, max, if (normalize) "normalized" else "raw", sep = "-"),
    factors, sep = "/")
  analyses[[key]] <<- record(name, metric, partial, min, max, normalize, factors)
}
for (name in names(datasets)) {
  for (normalize in c(FALSE, TRUE)) {
    add(name, "empirical_auc", "specificity", 0.8, 1, normalize)
    add(name, "empirical_auc", "sensitivity", 0.7, 1, normalize)
  }
  add(name, "empirical_auc", "specificity", 0.5, 0.9, FALSE)
  add(name, "binormal_auc")
  add(name, "binormal_auc", "specificity", 0.8, 1, FALSE)
  add(name, "binormal_auc", "sensitivity", 0.7, 1, TRUE)
}
add("vandyke", "empirical_auc", "specificity", 0.8, 1, FALSE, factors = "FRRC")
add("vandyke", "binormal_auc", factors = "FRRC")

# The binormal likelihood-ratio (PROPROC) AUC. Partial areas are attempted and, where MRMCaov's
# partial-area formula stops with an error on some reader x treatment or jackknife sample, the
# error is recorded instead of an analysis.
binormalLR_partial <- list()
for (name in names(datasets)) {
  add(name, "binormalLR_auc")
  for (kind in c("specificity", "sensitivity")) {
    min <- if (kind == "specificity") 0.8 else 0.7
    key <- paste(name, kind, min, 1, sep = "-")
    binormalLR_partial[[key]] <- tryCatch(
      {add(name, "binormalLR_auc", kind, min, 1, TRUE); list(error = NULL)},
      error = function(e) list(error = conditionMessage(e))
    )
  }
}
add("vandyke", "binormalLR_auc", factors = "FRRC")

partial_error <- function(cov) {
  tryCatch(
    {fit(vandyke, metric_call("empirical_auc", "specificity", 0.8, 1, FALSE), "RRRC", cov); NA},
    error = function(e) conditionMessage(e)
  )
}

fits <- list()
for (treatment in 1:2) {
  for (reader in 1:5) {
    d <- vandyke[vandyke$treatment == treatment & vandyke$reader == reader, ]
    p <- suppressWarnings(MRMCaov:::binormal_params(factor(d$truth), d$rating))
    item <- list(treatment = as.character(treatment), reader = as.character(reader),
                 a = p$a, b = p$b, auc = pnorm(p$a / sqrt(1 + p$b^2)))
    if (!is.null(p$optim)) {
      counts <- MRMCaov:::roc_counts(factor(d$truth), d$rating, collapse = TRUE)
      obj <- MRMCaov:::binormal_objfun(c(p$a, p$b, p$cutoffs), counts$events,
                                       counts$nonevents, all = TRUE)
      item$cutoffs <- p$cutoffs
      item$loglik <- obj$loglik
      item$max_abs_gradient <- max(abs(obj$gradient))
      item$trust_iterations <- p$optim$iterations
    }
    fits[[length(fits) + 1]] <- item
  }
}

# VanDyke treatment 1, reader 4 without case 107 (one of its jackknife samples): positives in
# the two highest categories only, so the likelihood has no maximum (b -> 0, the last cutoff
# -> inf) and its supremum has AUC = Phi(a) = 42/44 in the limit; trust stops after 100
# iterations without converging.
boundary <- vandyke[vandyke$treatment == 1 & vandyke$reader == 4 & vandyke$case != 107, ]
p <- suppressWarnings(MRMCaov:::binormal_params(factor(boundary$truth), boundary$rating))
boundary_fit <- list(a = p$a, b = p$b, cutoffs = p$cutoffs,
                     auc = pnorm(p$a / sqrt(1 + p$b^2)),
                     trust_iterations = p$optim$iterations,
                     trust_converged = p$optim$converged)

# The PROPROC fit of every reader x treatment: MRMCaov's estimates and the log-likelihood
# where trust stopped (-optim$value); NULL optim = MRMCaov's "lack of interior points" rule.
binormalLR_fits <- list()
for (name in names(datasets)) {
  d <- datasets[[name]]
  for (treatment in sort(unique(d$treatment))) {
    for (reader in sort(unique(d$reader))) {
      s <- d[d$treatment == treatment & d$reader == reader, ]
      p <- suppressWarnings(MRMCaov:::binormalLR_params(factor(s$truth), s$rating))
      binormalLR_fits[[length(binormalLR_fits) + 1]] <- list(
        data = name, treatment = as.character(treatment), reader = as.character(reader),
        d_a = p$d_a, c = p$c, cutoffs = p$cutoffs, fitted = !is.null(p$optim),
        loglik = if (is.null(p$optim)) NULL else -p$optim$value,
        auc = suppressWarnings(binormalLR_auc(s$truth, s$rating))
      )
    }
  }
}

# MRMCaov's jackknife samples of the PROPROC fits: for every reader x treatment, each case deleted
# in turn (one fit per distinct truth and rating, as its jackknife()), MRMCaov's estimates, the
# log-likelihood where trust stopped and the AUC the jackknife uses.
binormalLR_jackknife <- list()
for (name in names(datasets)) {
  d <- datasets[[name]]
  for (treatment in sort(unique(d$treatment))) {
    for (reader in sort(unique(d$reader))) {
      s <- d[d$treatment == treatment & d$reader == reader, ]
      keys <- paste(s$truth, s$rating)
      first <- match(keys, keys)
      d_a <- c_ <- auc <- loglik <- rep(NA_real_, nrow(s))
      for (i in unique(first)) {
        s2 <- s[-i, ]
        p <- suppressWarnings(MRMCaov:::binormalLR_params(factor(s2$truth), s2$rating))
        d_a[i] <- p$d_a
        c_[i] <- p$c
        if (!is.null(p$optim)) loglik[i] <- -p$optim$value
        auc[i] <- if (!is.null(p$optim) && !isTRUE(all.equal(p$c, 0))) {
          MRMCaov:::.auc.binormalLR(p$d_a, p$c)
        } else {
          suppressWarnings(binormalLR_auc(s2$truth, s2$rating))
        }
      }
      binormalLR_jackknife[[length(binormalLR_jackknife) + 1]] <- list(
        data = name, treatment = as.character(treatment), reader = as.character(reader),
        case = as.character(s$case), d_a = d_a[first], c = c_[first], loglik = loglik[first],
        auc = auc[first]
      )
    }
  }
}

golden <- list(
  peer = "MRMCaov 0.3.0",
  peer_commit = "d79e49bcef42ef2a17195aae84ca84ae569f8702",
  trust_version = as.character(packageVersion("trust")),
  r_version = R.version.string,
  script = "tests/data/mrmcaov_metrics.R",
  delong_partial_error = partial_error(DeLong),
  unbiased_partial_error = partial_error(unbiased),
  vandyke_binormal_fits = fits,
  vandyke_boundary_fit = boundary_fit,
  binormalLR_partial = binormalLR_partial,
  binormalLR_fits = binormalLR_fits,
  binormalLR_jackknife = binormalLR_jackknife,
  analyses = analyses
)
writeLines(toJSON(golden, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           "tests/data/mrmcaov_metrics.json")
