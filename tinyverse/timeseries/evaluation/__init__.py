"""Test-split metrics of the time-series task kinds (regression, forecasting, anomaly detection); the shared
``Evaluation`` type and classification metrics live in :mod:`tinyverse.evaluation`."""
