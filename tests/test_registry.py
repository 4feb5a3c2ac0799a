import pytest

from tinyverse.registry import (DATASETS, LAYERS, MODEL_REGISTRY, TASKS, TRANSFORMS, Registry, RegistryError,
                                registration_source)


def test_register_by_decorator_and_call_and_get():
    reg = Registry("thing")

    @reg.register
    def alpha():
        return 1

    @reg.register("Beta", color="red")
    def beta():
        return 2

    reg.register("gamma", lambda: 3)
    assert reg.get("alpha")() == 1 and reg.get("Beta")() == 2 and reg.get("gamma")() == 3
    assert reg.entry("Beta").metadata == {"color": "red"}
    assert reg.names() == ["Beta", "alpha", "gamma"]


def test_duplicate_names_raise_unless_overwrite():
    reg = Registry("thing")
    reg.register("a", int)
    with pytest.raises(RegistryError, match="already registered.*overwrite=True"):
        reg.register("a", float)
    reg.register("a", float, overwrite=True)
    assert reg.get("a") is float


def test_unknown_name_suggests_the_closest():
    reg = Registry("model")
    for n in ("CLS_1k_NPU", "CLS_4k_NPU", "REGR_1k"):
        reg.register(n, object)
    with pytest.raises(RegistryError) as err:
        reg.get("CLS_1K_NPU")
    msg = str(err.value)
    assert msg.startswith("unknown model 'CLS_1K_NPU'") and "'CLS_1k_NPU'" in msg and "\n" not in msg


def test_names_include_exclude_and_metadata_filters():
    reg = Registry("model")
    reg.register("CLS_1k", object, task="classification")
    reg.register("CLS_4k", object, task="classification")
    reg.register("REGR_1k", object, task="regression")
    assert reg.names("CLS_*") == ["CLS_1k", "CLS_4k"]
    assert reg.names(["CLS_*", "REGR_*"], exclude="*_4k") == ["CLS_1k", "REGR_1k"]
    assert reg.names(task="regression") == ["REGR_1k"]


def test_provenance_builtin_user_and_explicit_source():
    assert MODEL_REGISTRY.entry("CLS_1k_NPU").source == "builtin"
    assert "classification.py" in MODEL_REGISTRY.entry("CLS_1k_NPU").location
    reg = Registry("thing")

    def mine():
        return None

    reg.register("mine", mine)
    assert reg.entry("mine").source == f"user:{__name__}"
    with registration_source("extension:/tmp/my_ext.py"):
        reg.register("ext", mine)
    assert reg.entry("ext").source == "extension:/tmp/my_ext.py"


def test_builtin_registries_are_populated_lazily():
    assert "ConvBNReLULayer" in LAYERS
    assert "ucr" in DATASETS and "folder" in DATASETS
    assert "classification" in TASKS
    assert len(MODEL_REGISTRY.names("CLS_*")) >= 10
    assert TRANSFORMS.kind == "transform"
