"""Names the time-series modality uses."""
MODALITY = "timeseries"
TASK_CLASSIFICATION = "classification"
TASK_TYPES = (TASK_CLASSIFICATION,)
DEFAULT_MONITOR = {TASK_CLASSIFICATION: ("val_acc", "max")}
