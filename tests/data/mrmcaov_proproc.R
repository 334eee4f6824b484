# Golden values for the binormal likelihood-ratio (PROPROC) ROC fit
# (tests/analysis/test_proproc.py).
#
# Peer: MRMCaov 0.3.0 (github.com/brian-j-smith/MRMCaov, commit
# d79e49bcef42ef2a17195aae84ca84ae569f8702) with trust, binom and FRACTION, installed with
#   R CMD INSTALL -l /work/r/lib-common /work/r/src/NAME   (trust, binom, FRACTION, MRMCaov)
# Run from the repository root:
#   R_LIBS=/work/r/lib-common Rscript tests/data/mrmcaov_proproc.R
# It writes tests/data/proproc_sim.csv (the simulated study, reader,treatment,case,truth,rating)
# and tests/data/mrmcaov_proproc.json.
#
# Per reader x treatment of tests/data/vandyke.csv and tests/data/proproc_sim.csv:
#   params        binormalLR_params(truth, rating): d_a, c, the cutoffs, the log-likelihood at
#                 MRMCaov's estimates (-optim$value, trust's objective), trust's iterations,
#                 and the wall time of the fit; NULL optim = MRMCaov's "lack of interior
#                 points" rule (no fit)
#   auc           binormalLR_auc(truth, rating)
#   partial       for KIND specificity and sensitivity, NORM TRUE and FALSE:
#                 "auc": binormalLR_auc(truth, rating, partial = KIND, min = 0.8, max = 1,
#                 normalize = NORM), or null with "error" where MRMCaov stops. MRMCaov 0.3.0
#                 stops with "non-finite value supplied by optim" when the range reaches
#                 specificity 1 and c < 0 (sensitivity 1 and c > 0): binormalLR_cutoff starts its
#                 second search at the infinite cutoff of the first. Where |c| is small its
#                 cutoff search can also stop at a wrong point, and the area comes out outside
#                 [0, 1] (e.g. -0.2).
#                 "integrate": the same area under MRMCaov's own fitted curve by numerical
#                 integration, integrate() of sensitivity(curve, specificity = 1 - f) over f
#                 (specificity) or of specificity(curve, sensitivity = s) over s (sensitivity),
#                 rel.tol 1e-10; MRMCaov computes those points from the noncentral chi-square
#                 form of the curve (Hillis 2016), a route independent of its partial-area
#                 formula. Null where c = 0 (MRMCaov's binormal case, no integration needed).
#   curve         sensitivity(curve, specificity = 1 - FPF) at a few FPFs (null where c = 0)
# The simulated study: 5 readers x 2 treatments x 60 cases (25 diseased), set.seed(20261203);
# ratings from a proper binormal latent scale cut into 5 categories (readers 1-3), 101
# categories 0-100 (reader 4), and two degenerate readers' data (reader 5: perfect separation
# under treatment 1, one rating for every case under treatment 2).

suppressPackageStartupMessages({
  library(MRMCaov)
  library(jsonlite)
})

set.seed(20261203)
n_cases <- 60
truth <- rep(c(0, 1), c(35, 25))
sim <- NULL
for (treatment in 1:2) {
  for (reader in 1:5) {
    shift <- 1.2 + 0.3 * treatment + 0.2 * reader
    spread <- c(1, 1.6, 0.7, 1.3, 1)[reader]
    latent <- ifelse(truth == 1, rnorm(n_cases, shift, spread), rnorm(n_cases, 0, 1))
    rating <- if (reader <= 3) {
      as.numeric(cut(latent, c(-Inf, -0.3, 0.5, 1.1, 1.8, Inf)))
    } else if (reader == 4) {
      round(100 * pnorm(latent - 0.7))
    } else if (treatment == 1) {
      ifelse(truth == 1, sample(3:5, n_cases, TRUE), sample(1:2, n_cases, TRUE))
    } else {
      rep(3, n_cases)
    }
    sim <- rbind(sim, data.frame(
      reader = reader, treatment = treatment, case = seq_len(n_cases), truth = truth,
      rating = rating
    ))
  }
}
write.csv(sim, "tests/data/proproc_sim.csv", row.names = FALSE, quote = FALSE)

auc_curve <- MRMCaov:::auc.binormalLR_curve
sens_curve <- MRMCaov:::sensitivity.binormalLR_curve
spec_curve <- MRMCaov:::specificity.binormalLR_curve

partial_auc <- function(curve, truth, rating, kind, normalize) {
  res <- tryCatch(
    list(auc = binormalLR_auc(
      truth, rating, partial = kind, min = 0.8, max = 1, normalize = normalize
    ), error = NULL),
    error = function(e) list(auc = NULL, error = conditionMessage(e))
  )
  if (MRMCaov:::has_binormal_equiv(curve)) {
    res$integrate <- NULL
    return(res)
  }
  f <- if (kind == "specificity") {
    function(x) sens_curve(curve, specificity = 1 - x)
  } else {
    function(x) spec_curve(curve, sensitivity = x)
  }
  lims <- if (kind == "specificity") c(0, 0.2) else c(0.8, 1)
  area <- integrate(f, lims[1], lims[2], rel.tol = 1e-10)$value
  res$integrate <- if (normalize) area / 0.2 else area
  res
}


curve_fpf <- c(0.001, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 0.95)

fits <- function(d, name) {
  out <- list()
  for (treatment in sort(unique(d$treatment))) {
    for (reader in sort(unique(d$reader))) {
      s <- d[d$treatment == treatment & d$reader == reader, ]
      started <- proc.time()[["elapsed"]]
      params <- suppressWarnings(MRMCaov:::binormalLR_params(factor(s$truth), s$rating))
      seconds <- proc.time()[["elapsed"]] - started
      curve <- suppressWarnings(roc_curves(s$truth, s$rating, method = "binormalLR"))
      partial <- list()
      for (kind in c("specificity", "sensitivity")) {
        for (normalize in c(TRUE, FALSE)) {
          key <- paste0(kind, if (normalize) "_normalized" else "")
          partial[[key]] <- suppressWarnings(
            partial_auc(curve, s$truth, s$rating, kind, normalize)
          )
        }
      }
      out[[length(out) + 1]] <- list(
        data = name, reader = reader, treatment = treatment,
        d_a = params$d_a, c = params$c, cutoffs = params$cutoffs,
        fitted = !is.null(params$optim),
        loglik = if (is.null(params$optim)) NULL else -params$optim$value,
        iterations = if (is.null(params$optim)) NULL else params$optim$iterations,
        seconds = seconds,
        auc = suppressWarnings(binormalLR_auc(s$truth, s$rating)),
        partial = partial,
        curve = if (MRMCaov:::has_binormal_equiv(curve)) NULL else list(
          fpf = curve_fpf, tpf = sens_curve(curve, specificity = 1 - curve_fpf)
        )
      )
    }
  }
  out
}

golden <- list(
  r_version = R.version.string,
  mrmcaov_version = as.character(packageVersion("MRMCaov")),
  trust_version = as.character(packageVersion("trust")),
  partial_min = 0.8, partial_max = 1,
  fits = c(fits(read.csv("tests/data/vandyke.csv"), "vandyke"), fits(sim, "proproc_sim"))
)
write_json(golden, "tests/data/mrmcaov_proproc.json", auto_unbox = TRUE, digits = NA,
           pretty = TRUE, null = "null")
