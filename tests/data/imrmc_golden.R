# Golden values for analysis.mrmc.imrmc from iMRMC 2.1.2 doIMRMC (pure R engine).
#
# Run from the repository root:
#   Rscript tests/data/imrmc_golden.R
# with iMRMC 2.1.2 (github.com/DIDSR/iMRMC, Rpackage/iMRMC; its java folder removed) installed in
# /work/r/lib-imrmc:
#   R CMD INSTALL --no-docs --no-multiarch -l /work/r/lib-imrmc Rpackage/iMRMC
# Writes tests/data/imrmc_splitplot.csv, imrmc_missing.csv, imrmc_three.csv,
# imrmc_nested_cases.csv, imrmc_nested_readers.csv (inputs derived from vandyke.csv, seeded) and tests/data/imrmc_golden.json (the doIMRMC outputs). Pairs are
# named "A - B" in iMRMC's (sorted) modality order; the differences are AUC_A - AUC_B.

.libPaths(c("/work/r/lib-imrmc", .libPaths()))
library(iMRMC)
library(jsonlite)

read_long <- function(path) {
  read.csv(path, colClasses = c("character", "character", "character", "integer", "numeric"))
}

# iMRMC's R input: one row per rating (readerID, caseID, modalityID, score) and one truth row
# per case with readerID and modalityID "truth" (doAUCmrmc requires that spelling).
to_imrmc <- function(long) {
  truth <- long[!duplicated(long$case), c("case", "truth")]
  rbind(
    data.frame(readerID = "truth", caseID = truth$case, modalityID = "truth",
               score = truth$truth),
    data.frame(readerID = long$reader, caseID = long$case, modalityID = long$treatment,
               score = long$rating)
  )
}

vandyke <- read_long("tests/data/vandyke.csv")
franken <- read_long("tests/data/franken.csv")

# (b) split-plot: readers 1-2 read the odd-numbered cases, readers 3-5 the even-numbered ones,
# in both treatments (Van Dyke's cases 1-57 are all negative, so halves by ID would leave
# readers 1-2 without a positive case; odd/even gives 35 + 22 and 34 + 23 cases).
odd <- as.integer(vandyke$case) %% 2 == 1
splitplot <- vandyke[(vandyke$reader %in% c("1", "2") & odd) |
                       (vandyke$reader %in% c("3", "4", "5") & !odd), ]
write.csv(splitplot, "tests/data/imrmc_splitplot.csv", row.names = FALSE, quote = FALSE)

# (c) random missing reads: each read of Van Dyke dropped with probability 0.25.
set.seed(20261203)
missing <- vandyke[runif(nrow(vandyke)) > 0.25, ]
write.csv(missing, "tests/data/imrmc_missing.csv", row.names = FALSE, quote = FALSE)

# (e) three treatments, missing reads, treatment "3" first in the file: treatment 3 is
# treatment 1's rating raised by one (at most 5) on every third case, each read of the three
# treatments dropped with probability 0.2.
third <- vandyke[vandyke$treatment == "1", ]
third$treatment <- "3"
third$rating <- pmin(5, third$rating + (as.integer(third$case) %% 3 == 0))
three <- rbind(third, vandyke)
three <- three[runif(nrow(three)) > 0.2, ]
write.csv(three, "tests/data/imrmc_three.csv", row.names = FALSE, quote = FALSE)

# (f) cases nested within treatments: treatment 1 on the odd-numbered cases, 2 on the even ones.
# (g) readers nested within treatments: readers 1-2 read treatment 1, readers 3-5 treatment 2.
nested_cases <- vandyke[(as.integer(vandyke$case) %% 2 == 1) == (vandyke$treatment == "1"), ]
write.csv(nested_cases, "tests/data/imrmc_nested_cases.csv", row.names = FALSE, quote = FALSE)
nested_readers <- vandyke[(vandyke$reader %in% c("1", "2")) == (vandyke$treatment == "1"), ]
write.csv(nested_readers, "tests/data/imrmc_nested_readers.csv", row.names = FALSE,
          quote = FALSE)

summarise <- function(long) {
  result <- doIMRMC(to_imrmc(long))
  pick <- function(table) {
    single <- table[table$modalityB == "NO_MOD", ]
    pairs <- table[table$modalityB != "NO_MOD", ]
    list(
      single = lapply(seq_len(nrow(single)), function(i) list(
        treatment = as.character(single$modalityA[i]),
        estimate = single$AUCA[i], variance = single$varAUCA[i], df = single$dfBDG[i],
        ci_lower = single$botCIBDG[i], ci_upper = single$topCIBDG[i],
        p_value_vs_half = single$pValueBDG[i])),
      differences = lapply(seq_len(nrow(pairs)), function(i) list(
        pair = paste(pairs$modalityA[i], "-", pairs$modalityB[i]),
        estimate = pairs$AUCAminusAUCB[i], variance = pairs$varAUCAminusAUCB[i],
        df = pairs$dfBDG[i], ci_lower = pairs$botCIBDG[i], ci_upper = pairs$topCIBDG[i],
        p_value = pairs$pValueBDG[i]))
    )
  }
  per_reader <- result$perReader[result$perReader$modalityB == "NO_MOD", ]
  list(
    Ustat = pick(result$Ustat),
    MLEstat = pick(result$MLEstat),
    reader_auc = lapply(seq_len(nrow(per_reader)), function(i) list(
      reader = as.character(per_reader$readerID[i]),
      treatment = as.character(per_reader$modalityA[i]),
      auc = per_reader$AUCA[i]))
  )
}

golden <- list(
  generated_by = "tests/data/imrmc_golden.R",
  r_version = R.version.string,
  imrmc_version = as.character(packageVersion("iMRMC")),
  call = "doIMRMC(to_imrmc(read_long(FILE)))",
  datasets = list(
    vandyke = c(list(file = "vandyke.csv"), summarise(vandyke)),
    splitplot = c(list(file = "imrmc_splitplot.csv"), summarise(splitplot)),
    missing = c(list(file = "imrmc_missing.csv"), summarise(missing)),
    franken = c(list(file = "franken.csv"), summarise(franken)),
    three = c(list(file = "imrmc_three.csv"), summarise(three)),
    nested_cases = c(list(file = "imrmc_nested_cases.csv"), summarise(nested_cases)),
    nested_readers = c(list(file = "imrmc_nested_readers.csv"), summarise(nested_readers))
  )
)
writeLines(toJSON(golden, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
           "tests/data/imrmc_golden.json")
