"""The report: tables and figures of the paper rebuilt from result files alone (``ebmc-report``)."""
