"""Spec-dict models and the model zoo (``MODEL_REGISTRY``)."""
from tinyverse.models.factory import create_model, get_model_spec, list_models, model_arguments
from tinyverse.models.generic import GenericModelWithSpec
from tinyverse.models.spec import LayerInfo, ModelSpec
from tinyverse.registry import MODEL_REGISTRY

__all__ = ["MODEL_REGISTRY", "GenericModelWithSpec", "ModelSpec", "LayerInfo", "create_model", "get_model_spec",
           "list_models", "model_arguments"]
