"""Built-in zoo entries; importing this module registers them in MODEL_REGISTRY."""
from tinyverse.timeseries.zoo import classification  # noqa: F401
from tinyverse.timeseries.zoo import anomaly  # noqa: F401
from tinyverse.timeseries.zoo import forecasting, regression  # noqa: F401
from tinyverse.timeseries.zoo import teachers  # noqa: F401
