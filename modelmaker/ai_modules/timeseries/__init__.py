"""The time-series modality: classification (regression, anomaly detection, forecasting build on it)."""
from modelmaker.ai_modules.timeseries.runner import TimeSeriesModule

__all__ = ["TimeSeriesModule"]
