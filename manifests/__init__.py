"""Data shipped with ebmc: the standard CMU-MOSI / CMU-MOSEI folds (folds/), documented in README.md."""
