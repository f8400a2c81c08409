"""EBMC training and evaluation on a feature store: data, model, loop, runs, protocols and report."""
