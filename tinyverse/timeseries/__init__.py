"""Time series: what only the time-series modality uses — its datasets (``data``), feature extraction
(``transforms``), task kinds beyond classification (``tasks``), their metrics (``evaluation``) and the zoo of
spec-language models (``zoo``). The shared core (registry, layers, spec models, training loop, quantization,
export, verification, devices) lives at the top of ``tinyverse``; audio lives in ``tinyverse.audio``."""
