# Golden values for analysis.froc: RJafroc 2.1.3 (git commit 44b0e39e) on R 4.2.
#
#   Rscript tests/data/rjafroc_froc.R        (from the repository root)
#
# For each FROC dataset: write it with RJafroc's own writer into tests/data/froc/NAME.xlsx,
# read that file back with DfReadDataFile (the golden values come from the dataset as read from
# the workbook, so the Python side reads exactly the same numbers: RJafroc's writer rounds
# ratings to 6 significant digits), then record
#   UtilFigureOfMerit(ds, FOM)                                  for every FOM
#   St(ds, FOM, method = "OR" | "DBM", analysisOption = "RRRC" | "FRRC" | "RRFC")
# in tests/data/rjafroc_froc.json.
#
# RJafroc 2.1.3 facts met here:
# - DfSaveDataFile(ds, f, format = "JAFROC") is gone (its JAFROC writer is commented out); the
#   JAFROC workbook writer is DfWriteExcelDataFile(ds, f).
# - St(..., analysisOption = "ALL") stops with "Incorrect analysisOption: must be `RRRC`, `FRRC`,
#   `RRFC` or `ALL`" (isValidAnalysisOption accepts only the three), so each option is run alone.
# - St(..., covEstMethod = "DeLong") stops for every FOM ("code needs fixing: SmpldFom2ORCov
#   DeLong"), as does "bootstrap".
# - DfReadDataFile's default (old) format reads reader IDs with as.integer(): readers must be
#   integers (all datasets below have integer reader IDs).
suppressMessages({
  .libPaths(c("/work/r/lib-common", .libPaths()))
  library(RJafroc)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("RJafroc")) == "2.1.3")

out_dir <- "tests/data/froc"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

foms <- c("wAFROC", "AFROC", "HrAuc", "wAFROC1", "AFROC1", "HrSe", "HrSp", "MaxLLF", "MaxNLF")
options_ <- c("RRRC", "FRRC", "RRFC")

# A simulated study with several lesions per case and unequal lesion weights.
simulated <- function() {
  set.seed(20261203)
  K1 <- 40; K2 <- 35
  perCase <- sample(1:4, K2, replace = TRUE)
  ds <- SimulateFrocDataset(mu = 1.5, lambda = 1.2, nu = 0.8, zeta1 = -0.5,
                            I = 2, J = 4, K1 = K1, K2 = K2, perCase = perCase,
                            seed = 20261203, deltaMu = 0.4)
  w <- ds$lesions$weights
  for (k in 1:K2) {
    raw <- runif(perCase[k], 0.5, 1.5)
    w[k, 1:perCase[k]] <- round(raw / sum(raw), 4)
    w[k, perCase[k]] <- 1 - sum(w[k, seq_len(perCase[k] - 1)])
  }
  ds$lesions$weights <- w
  ds
}

datasets <- list(
  dataset01 = dataset01, # TONY: 2 treatments, 5 readers, 185 cases, <= 2 lesions
  dataset04 = dataset04, # FZ: 5 treatments, 4 readers, 200 cases, <= 3 lesions
  dataset05 = dataset05, # JT: 2 treatments, 9 readers, 92 cases, <= 3 lesions
  dataset06 = dataset06, # Magnus: 2 treatments, 4 readers, 89 cases, <= 15 lesions
  simulated = simulated()
)

frame <- function(d) {
  if (is.null(d) || !is.data.frame(d)) return(d)
  rows <- lapply(seq_len(nrow(d)), function(r) as.list(d[r, , drop = FALSE]))
  names(rows) <- rownames(d)
  rows
}

golden <- list()
for (name in names(datasets)) {
  file <- file.path(out_dir, paste0(name, ".xlsx"))
  DfWriteExcelDataFile(datasets[[name]], file)
  ds <- DfReadDataFile(file)
  entry <- list(
    file = paste0("froc/", name, ".xlsx"),
    modalityID = unname(ds$descriptions$modalityID),
    readerID = unname(ds$descriptions$readerID),
    K = dim(ds$ratings$NL)[3], K2 = dim(ds$ratings$LL)[3],
    fom = list(), st = list()
  )
  for (fom in foms) {
    f <- UtilFigureOfMerit(ds, FOM = fom)
    entry$fom[[fom]] <- list(rows = rownames(f), cols = colnames(f), values = unname(f))
    for (method in c("OR", "DBM")) {
      for (opt in options_) {
        started <- proc.time()[["elapsed"]]
        st <- tryCatch(St(ds, FOM = fom, method = method, analysisOption = opt),
                       error = function(e) list(error = conditionMessage(e)))
        seconds <- proc.time()[["elapsed"]] - started
        key <- paste(fom, method, opt, sep = "/")
        if (!is.null(st$error)) {
          entry$st[[key]] <- list(error = st$error)
          next
        }
        res <- st[[opt]]
        anova <- st$ANOVA
        entry$st[[key]] <- list(
          seconds = seconds,
          trtMeans = unname(st$FOMs$trtMeans[, 1]),
          FTests = frame(res$FTests),
          ciDiffTrt = frame(res$ciDiffTrt),
          ciAvgRdrEachTrt = frame(res$ciAvgRdrEachTrt),
          VarCom = frame(anova$VarCom),
          TRanova = frame(anova$TRanova),
          TRCanova = frame(anova$TRCanova)
        )
      }
    }
  }
  golden[[name]] <- entry
  cat(name, "done\n")
}
# The project's own writer (analysis.froc.workbook_bytes, names that are not integers numbered,
# file written by tests/analysis/test_froc_data.py's small study): RJafroc must read it as the
# project does.
ds <- DfReadDataFile(file.path(out_dir, "project_written.xlsx"))
golden$project_written <- list(
  file = "froc/project_written.xlsx",
  modalityID = unname(ds$descriptions$modalityID),
  readerID = unname(ds$descriptions$readerID),
  K = dim(ds$ratings$NL)[3], K2 = dim(ds$ratings$LL)[3],
  fom = lapply(setNames(foms, foms), function(fom) {
    f <- UtilFigureOfMerit(ds, FOM = fom)
    list(rows = rownames(f), cols = colnames(f), values = unname(f))
  }),
  st = list()
)

writeLines(toJSON(golden, auto_unbox = TRUE, digits = NA, na = "null", null = "null",
                  pretty = FALSE), "tests/data/rjafroc_froc.json")
