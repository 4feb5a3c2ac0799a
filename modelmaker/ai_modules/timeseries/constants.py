"""Names the time-series modality uses."""
MODALITY = "timeseries"
TASK_CLASSIFICATION = "classification"
TASK_REGRESSION = "regression"
TASK_FORECASTING = "forecasting"
TASK_ANOMALY_DETECTION = "anomaly_detection"
TASK_TYPES = (TASK_CLASSIFICATION, TASK_REGRESSION, TASK_FORECASTING, TASK_ANOMALY_DETECTION)
# A training.monitor ending so is maximised (val_acc, val_f1, val_auc, val_r2); anything else is minimised.
HIGHER_IS_BETTER_SUFFIXES = ("acc", "f1", "auc", "r2")
