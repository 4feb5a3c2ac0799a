"""Time-series task kinds beyond classification (registered in ``TASKS``): regression, forecasting, anomaly
detection. Classification and the ``TaskModule`` base are shared: :mod:`tinyverse.training.tasks`."""
