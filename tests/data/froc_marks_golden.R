# Golden values for the platform's FROC export: RJafroc 2.1.3 (git commit 44b0e39e) on R 4.2
# reads the workbook that `manage.py export demo --format rjafroc --finding nodule` wrote for the
# demo study (60 cases, `manage.py demo --simulate-reads`, readers R02-R04 numbered 1-3 in sheet
# READERS, modality IDs "unassisted" and "assisted"), and analyses its wAFROC:
#
#   Rscript tests/data/froc_marks_golden.R        (from the repository root)
#
#   ds <- DfReadDataFile("tests/data/froc/demo_nodule.xlsx")      # the default (JAFROC) format
#   UtilFigureOfMerit(ds, FOM = "wAFROC")
#   St(ds, FOM = "wAFROC", method = "OR", analysisOption = "RRRC")
#
# into tests/data/froc_marks_golden.json, which tests/analysis/test_froc_export_golden.py
# compares with analysis.froc.read_workbook and froc_analysis on the same file.
suppressMessages({
  .libPaths(c("/work/r/lib-common", .libPaths()))
  library(RJafroc)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("RJafroc")) == "2.1.3")

t0 <- proc.time()[["elapsed"]]
ds <- DfReadDataFile("tests/data/froc/demo_nodule.xlsx")
fom <- UtilFigureOfMerit(ds, FOM = "wAFROC")
st <- St(ds, FOM = "wAFROC", method = "OR", analysisOption = "RRRC")
elapsed <- proc.time()[["elapsed"]] - t0

trt <- st$FOMs$trtMeans
diffs <- st$RRRC$ciDiffTrt
single <- st$RRRC$ciAvgRdrEachTrt
golden <- list(
  rjafroc = as.character(packageVersion("RJafroc")),
  seconds = elapsed,
  modalities = as.character(ds$descriptions$modalityID),
  readers = as.character(ds$descriptions$readerID),
  fom = unname(as.matrix(fom)),
  treatment_value = unname(trt[, 1]),
  var_R = st$ANOVA$VarCom["VarR", "Estimates"],
  cov1 = st$ANOVA$VarCom["Cov1", "Estimates"],
  cov2 = st$ANOVA$VarCom["Cov2", "Estimates"],
  cov3 = st$ANOVA$VarCom["Cov3", "Estimates"],
  var_error = st$ANOVA$VarCom["Var", "Estimates"],
  f = st$RRRC$FTests["Treatment", "FStat"],
  df2 = st$RRRC$FTests["Error", "DF"],
  p = st$RRRC$FTests["Treatment", "p"],
  diff_estimate = diffs[1, "Estimate"],
  diff_se = diffs[1, "StdErr"],
  diff_lower = diffs[1, "CILower"],
  diff_upper = diffs[1, "CIUpper"],
  single_se = unname(single[, "StdErr"]),
  single_df = unname(single[, "DF"])
)
write(toJSON(golden, digits = NA, auto_unbox = TRUE, pretty = TRUE),
      "tests/data/froc_marks_golden.json")
print(st$RRRC$FTests)
print(diffs)
print(single)
