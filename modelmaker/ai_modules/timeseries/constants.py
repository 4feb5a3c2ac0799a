"""Names the time-series modality uses."""
MODALITY = "timeseries"
TASK_CLASSIFICATION = "classification"
TASK_TYPES = (TASK_CLASSIFICATION,)
# A training.monitor ending so is maximised (val_acc, val_f1, val_auc, val_r2); anything else is minimised.
HIGHER_IS_BETTER_SUFFIXES = ("acc", "f1", "auc", "r2")
