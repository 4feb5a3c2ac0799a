"""Human-readable help for the time-series tasks, shown by the CLI."""
TASK_DESCRIPTIONS = {
    "classification": "Assign one label to each window of a (multi-channel) sensor signal; metric: accuracy.",
    "regression": "Predict one or more values from each series (e.g. fat content from a spectrum); metrics: RMSE, "
                  "MAE, R^2 in the target's units, next to the predict-the-training-mean baseline.",
    "forecasting": "Forecast the next `horizon` values of a series from the last `window` values; metrics: sMAPE, "
                   "MASE, next to the naive and seasonal-naive baselines on the same windows.",
    "anomaly_detection": "Flag anomalous windows of a series with an autoencoder trained on normal data only: score "
                         "= reconstruction error, threshold chosen on validation data; metrics: ROC AUC, F1.",
}
