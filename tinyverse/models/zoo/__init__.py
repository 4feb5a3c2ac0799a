"""Built-in zoo entries; importing this module registers them in MODEL_REGISTRY."""
from tinyverse.models.zoo import classification  # noqa: F401
from tinyverse.models.zoo import anomaly  # noqa: F401
from tinyverse.models.zoo import forecasting, regression  # noqa: F401
