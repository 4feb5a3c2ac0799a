"""Architecture rules, checked on the source of tinyverse/ and modelmaker/ (an AST walk, nothing imported for
(a)-(c)):

(a) the module import graph has no cycle, and tinyverse never imports modelmaker;
(b) no private name (``_x``) of one module is used by another;
(c) callers ask a NAM model (the model contract) instead of branching on its class: few ``isinstance`` checks on
    the NAM classes outside tinyverse/audio/nam/models.py;
(d) every NAM model in MODEL_REGISTRY implements the contract (tinyverse.models.contract), and its stream hooks,
    streaming ONNX graph and TFLite twin reference agree with its whole-input forward.

How the import graph is built (a). Every import statement counts, wherever it is — at the top, or inside a
function (an import moved into a function still runs, and a cycle it closes only fails later, at call time) —
except under ``if TYPE_CHECKING:`` (never executed). Edges:

* ``import a.b.c`` → ``a.b.c`` (the longest prefix that is one of our modules);
* ``from a.b import n`` → ``a.b.n`` when that is a module (a submodule import), else ``a.b`` (``n`` is a name
  defined or re-exported there; ``a.b`` may be a package, i.e. its ``__init__``); relative imports are resolved
  against the importing module's package;
* importing ``a.b.c`` also runs the ``__init__`` of the packages ``a`` and ``a.b``: an edge to each, unless the
  importer lies inside that package. A package's own modules are imported while (or after) the package
  initialises, so ``pkg/__init__.py`` importing ``pkg.sub`` and ``pkg.sub`` importing ``pkg.other`` is no cycle;
  but ``pkg.sub`` doing ``from pkg import name`` (an explicit edge to ``pkg``) closes one — it reads a name
  from a half-initialised package.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tinyverse", "modelmaker")
NAM_MODULE = "tinyverse.audio.nam.models"
MAX_NAM_ISINSTANCE = 3  # issue #11: "isinstance checks on NAM model classes outside their own module: <= 3"


# -- source model ------------------------------------------------------------------------------------------------
@functools.cache
def module_files() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


@functools.cache
def tree(module: str) -> ast.Module:
    return ast.parse(module_files()[module].read_text(encoding="utf-8"), str(module_files()[module]))


def where(module: str, node: ast.AST) -> str:
    path = module_files().get(module)
    return f"{path.relative_to(ROOT) if path else module}:{getattr(node, 'lineno', '?')}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(module: str, include_type_checking: bool = False,
                 parsed: ast.Module | None = None) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of ``module`` (``parsed``: its source, for made-up modules), at any depth."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not include_type_checking:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(parsed or tree(module))
    return out


def _own(name: str) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    mods = module_files()
    while name not in mods:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _from_base(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    path = module_files().get(module)
    is_package = path is not None and path.name == "__init__.py"
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imported_modules(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Our modules an import statement names (before the implicit package ``__init__`` edges)."""
    mods = module_files()
    targets: list[str | None] = []
    if isinstance(node, ast.Import):
        targets = [_own(a.name) for a in node.names]
    else:
        base = _from_base(module, node)
        for a in node.names:
            sub = f"{base}.{a.name}"
            targets.append(sub if sub in mods else _own(base))
    return [t for t in targets if t is not None]


def edges(module: str, include_type_checking: bool = False) -> dict[str, int]:
    """target module → line of the first import of it in ``module``."""
    out: dict[str, int] = {}
    for node in import_nodes(module, include_type_checking):
        for target in imported_modules(module, node):
            parts = target.split(".")
            for i in range(1, len(parts)):  # the packages whose __init__ the import runs
                package = ".".join(parts[:i])
                if not (module == package or module.startswith(package + ".")):
                    out.setdefault(package, node.lineno)
            if target != module:
                out.setdefault(target, node.lineno)
    return out


def import_graph() -> dict[str, dict[str, int]]:
    return {m: edges(m) for m in module_files()}


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component with more than one module (Tarjan, then BFS), from
    and back to the component's first module; the component's other modules follow the cycle's end."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    cycles = []
    for comp in components:
        start = min(comp)
        prev: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in prev:
            nxt = []
            for v in frontier:
                for w in graph[v]:
                    if w in comp and w not in prev:
                        prev[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        v = prev[start]
        while v != start:
            path.append(v)
            v = prev[v]
        path.append(start)
        cycle = path[::-1]
        cycles.append(cycle + sorted(comp - set(cycle)))
    return cycles


def describe_cycle(found: list[str], graph: dict[str, dict[str, int]]) -> str:
    end = found.index(found[0], 1) + 1
    cycle, others = found[:end], found[end:]
    steps = [f"{a} -> {b} ({module_files()[a].relative_to(ROOT)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    tail = f"\n  (also in this knot: {', '.join(others)})" if others else ""
    return "import cycle:\n    " + "\n    ".join(steps) + tail


# -- (a) import graph ----------------------------------------------------------------------------------------------
def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "\n".join(describe_cycle(c, graph) for c in cycles)


def test_the_cycle_finder_sees_function_level_imports_and_package_inits():
    # The rules above on a made-up graph: a cycle closed only by an import inside a function, one closed through a
    # package __init__, and an __init__ importing its own submodules (no cycle).
    graph = {"p": {"p.a": 1, "p.b": 1}, "p.a": {"p.b": 3}, "p.b": {}, "q.x": {"q.y": 1}, "q.y": {"q.x": 9},
             "r": {"r.s": 1}, "r.s": {"r": 2}}
    cycles = find_cycles(graph)
    assert sorted(cycles) == [["q.x", "q.y", "q.x"], ["r", "r.s", "r"]]
    knot = find_cycles({"a": {"b": 1}, "b": {"a": 1, "c": 1}, "c": {"b": 1}})
    assert knot == [["a", "b", "a", "c"]]


def test_edges_follow_the_rules_on_real_modules():
    # a submodule importing a sibling: no edge to its own package; an outside module: edges to the packages it enters
    assert "tinyverse.audio.nam" not in edges("tinyverse.audio.nam.format")
    assert "tinyverse.audio.nam.models" in edges("tinyverse.audio.nam.format")
    nam = edges("tinyverse.audio.nam.models")
    assert {"tinyverse.models", "tinyverse.models.contract", "tinyverse.audio.twin"} <= set(nam)
    assert not {"tinyverse", "tinyverse.audio", "tinyverse.audio.nam"} & set(nam)
    # imports inside functions count (tinyverse.audio.stream imports tinyverse.training inside load_audio_model)
    assert "tinyverse.training" in edges("tinyverse.audio.stream")


def test_tinyverse_never_imports_modelmaker():
    bad = []
    for module in module_files():
        if module.split(".")[0] != "tinyverse":
            continue
        for node in import_nodes(module, include_type_checking=True):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [_from_base(module, node)]
            bad += [f"{where(module, node)}: imports {n}" for n in names if n.split(".")[0] == "modelmaker"]
    assert not bad, "\n".join(bad)


# -- (b) private names -------------------------------------------------------------------------------------------
def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@functools.cache
def private_definitions() -> dict[str, frozenset[str]]:
    """Private name → the modules that define it: functions, classes, module variables, attributes set on self."""
    found: dict[str, set[str]] = {}
    for module in module_files():
        for node in ast.walk(tree(module)):
            name = None
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = node.name
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                name = node.attr
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                name = node.id
            if name and _private(name):
                found.setdefault(name, set()).add(module)
    return {k: frozenset(v) for k, v in found.items()}


def private_uses(module: str, parsed: ast.Module | None = None) -> list[str]:
    """Where ``module`` reaches into another module's private names: ``from x import _n``, ``import x._m``,
    ``x._n`` on a module it imported, and ``obj._n`` (obj not self / cls / super()) where ``_n`` is defined only in
    other modules of ours."""
    mods = module_files()
    bad = []
    module_aliases: dict[str, str] = {}
    parsed = parsed or tree(module)
    for node in import_nodes(module, include_type_checking=True, parsed=parsed):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _own(a.name):
                    module_aliases[a.asname or a.name.split(".")[0]] = a.name
                parent = a.name.rsplit(".", 1)[0]
                if _own(a.name) and _private(a.name.split(".")[-1]) and not module.startswith(parent + "."):
                    bad.append(f"{where(module, node)}: import {a.name} (a private module of {parent})")
            continue
        base = _from_base(module, node)
        if not _own(base):
            continue  # third-party privates (e.g. lightning's launchers) are theirs to keep stable
        for a in node.names:
            sub = f"{base}.{a.name}"
            if sub in mods:
                module_aliases[a.asname or a.name] = sub
                if _private(a.name) and not module.startswith(base + "."):
                    bad.append(f"{where(module, node)}: from {base} import {a.name} (a private module)")
            elif _private(a.name):
                bad.append(f"{where(module, node)}: from {base} import {a.name}")
    defined = private_definitions()
    for node in ast.walk(parsed):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in module_aliases:
            bad.append(f"{where(module, node)}: {value.id}.{node.attr} (private to {module_aliases[value.id]})")
            continue
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super":
            continue
        owners = defined.get(node.attr)
        if owners and module not in owners:
            bad.append(f"{where(module, node)}: {ast.unparse(node)} (private to {', '.join(sorted(owners))})")
    return bad


def test_no_private_name_is_used_outside_its_module():
    bad = [line for module in module_files() for line in private_uses(module)]
    assert not bad, "private names used outside their module (make them public or move them):\n" + "\n".join(bad)


def test_the_private_name_check_catches_each_form():
    # The checker on a made-up module: each form it must catch, and what it must leave alone.
    src = ("from tinyverse.devices.check import op_attributes\n"
           "from tinyverse.audio.nam.models import _FlatReader\n"
           "from tinyverse.audio import _tflite_worker\n"
           "import tinyverse.audio.nam.models as nm\n"
           "from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher\n"
           "def f(model, reader):\n"
           "    nm._flatten([])\n"
           "    model._activation('Tanh')\n"
           "    reader._pos\n"
           "    model._fields\n"
           "    return super()._x\n")
    found = private_uses("tinyverse.devices.made_up", ast.parse(src))
    text = "\n".join(found)
    assert "import _FlatReader" in text and "_tflite_worker" in text and "nm._flatten" in text
    assert "model._activation" in text and "reader._pos" in text
    assert "_fields" not in text and "super" not in text and "op_attributes" not in text and "lightning" not in text
    assert len(found) == 5, text


# -- (c) no isinstance ladder on the NAM classes --------------------------------------------------------------------
@functools.cache
def nam_classes() -> frozenset[str]:
    return frozenset(n.name for n in tree(NAM_MODULE).body if isinstance(n, ast.ClassDef) and not _private(n.name))


def _names_in(node: ast.expr) -> set[str]:
    return {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
            if isinstance(n, ast.Name) or isinstance(n, ast.Attribute)}


def class_checks(module: str, classes: frozenset[str], parsed: ast.Module | None = None) -> list[str]:
    """``isinstance`` / ``issubclass`` on ``classes``, ``type(x) is C`` and ``type(x).__name__ == "C"`` in ``module``."""
    found = []
    for node in ast.walk(parsed or tree(module)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance",
                                                                                             "issubclass"):
            if len(node.args) == 2 and _names_in(node.args[1]) & classes:
                found.append(f"{where(module, node)}: {ast.unparse(node)}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            on_type = any(isinstance(s, (ast.Call, ast.Attribute)) and "type" in _names_in(s) for s in sides)
            named = set().union(*(_names_in(s) for s in sides)) | {s.value for s in sides
                                                                   if isinstance(s, ast.Constant)
                                                                   and isinstance(s.value, str)}
            if on_type and named & classes:
                found.append(f"{where(module, node)}: {ast.unparse(node)}")
    return found


def test_nam_classes_are_not_branched_on_outside_their_module():
    classes = nam_classes()
    assert {"NAMWaveNet", "NAMLSTM", "NAMLinear"} <= classes
    found = [line for module in module_files() if module != NAM_MODULE for line in class_checks(module, classes)]
    assert len(found) <= MAX_NAM_ISINSTANCE, ("ask the model (tinyverse.models.contract) instead of checking its "
                                              "class:\n" + "\n".join(found))


def test_the_class_check_counter_sees_each_form():
    src = ("def f(m, nam):\n"
           "    a = isinstance(m, NAMLSTM)\n"
           "    b = isinstance(m, (int, nam.NAMWaveNet))\n"
           "    c = type(m) is NAMLSTM\n"
           "    d = type(m).__name__ == 'NAMLinear'\n"
           "    e = isinstance(m, dict) and m.kind == 'NAMLSTM'\n"
           "    f = m.stream_kind == 'state'\n")
    found = class_checks("tinyverse.made_up", nam_classes(), ast.parse(src))
    assert [line.split(":")[1] for line in found] == ["2", "3", "4", "5"], found


# -- (d) every NAM model implements the contract ----------------------------------------------------------------
def nam_registry_names() -> list[str]:
    from tinyverse.models import MODEL_REGISTRY

    # Knob models take a second input (params); tests/audio/test_knob_models.py checks their contract.
    return [e.name for e in MODEL_REGISTRY.entries()
            if e.metadata.get("modality") == "audio" and e.metadata.get("task") != "knob_modelling"]


def test_every_audio_preset_is_listed():
    names = nam_registry_names()
    assert {"NAM_WaveNet_standard", "NAM_WaveNet_nano", "NAM_LSTM_standard", "NAM_Linear", "NAM_WaveNet"} <= set(names)


# Entries that need their parts named: a Sequential of two zoo stages (an IR-like Linear, then a WaveNet).
EXAMPLE_KWARGS = {"Sequential": {"models": [{"model": "NAM_Linear", "config": {"receptive_field": 16}},
                                            {"model": "NAM_WaveNet_nano"}]}}


@pytest.mark.parametrize("name", nam_registry_names())
def test_every_nam_model_implements_the_contract(name):
    from tinyverse.audio.twin import AudioExportError, TwinPlan
    from tinyverse.models import create_model
    from tinyverse.models.contract import ModelContract, NamModel, StreamingModel

    torch.manual_seed(0)
    model = create_model(name, **EXAMPLE_KWARGS.get(name, {})).double().eval()
    assert isinstance(model, ModelContract) and isinstance(model, StreamingModel) and isinstance(model, NamModel)
    rf = model.receptive_field
    assert isinstance(rf, int) and rf >= 1
    assert model.stream_kind in ("context", "state")
    assert model.input_shapes == {"audio": (None,)}
    cost = model.cost()
    assert cost.macs_per_sample > 0 and cost.macs_per_inference is None and cost.receptive_field == rf
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert model.num_weights == len(model.export_weights())
    config = model.nam_config()  # a container's submodels (Sequential: its models) hold its weights
    nested = [s["model"] for s in config.get("submodels", [])] + list(config.get("models", []))
    assert cost.weights == model.num_weights + sum(len(s["weights"]) for s in nested)
    ops = model.device_ops()
    assert ops and all(isinstance(op.get("op_class"), str) and op["op_class"] for op in ops)
    assert model.describe()["architecture"] == model.nam_architecture == model.stream_metadata()["architecture"]
    assert model.stream_metadata()["kind"] == model.stream_kind
    assert bool(model.initial_stream_state()) == (model.stream_kind == "state")
    model.prepare_for_inference()

    # Stream hooks: blocks of uneven length compute what the whole-input forward computes from silence.
    x = torch.randn(1, 700, dtype=torch.float64) * 0.3
    with torch.no_grad():
        whole = model(x, pad_start=True)[0]
    state = model.stream_init(torch.float64)
    pieces = []
    for a, b in [(0, 1), (1, 65), (65, 300), (300, 700)]:
        y, state = model.stream_block(x[:, a:b], state)
        pieces.append(y)
    np.testing.assert_allclose(torch.cat(pieces).numpy(), whole.numpy(), rtol=0, atol=1e-9)

    # Export hooks: the streaming ONNX graph and the TFLite twin's reference compute the same block.
    block = 32
    length = block + rf - 1 if model.stream_kind == "context" else block
    missing = model.unavailable_exports()
    if "tflite" in missing:  # a model without a TFLite twin says why, and the twin refuses with that reason
        with pytest.raises(AudioExportError) as err:
            model.streaming_twin(block)
        assert str(err.value) == missing["tflite"]
    else:
        twin = model.streaming_twin(block)
        assert isinstance(twin, TwinPlan) and twin.ops and twin.output in {op["name"] for op in twin.ops}
        assert twin.input_shape[0] == length
    # A twin that keeps histories in variables inside the file (a composed model) reads the rows as one stream.
    one_stream = "tflite" not in missing and any(op["kind"] == "history" for op in twin.ops)
    xb = torch.randn(2, length, dtype=torch.float64) * 0.3
    with torch.no_grad():
        ref = model.twin_reference(xb)
        if model.stream_kind == "context":
            graph = model.streaming_module()(xb)
        elif one_stream:  # what the whole model computes on the rows joined, from silence
            graph = model(xb.reshape(1, -1), pad_start=True).reshape(2, -1)
        else:
            zeros = [torch.zeros(2, *t.shape, dtype=torch.float64) for t in model.initial_stream_state().values()]
            graph = model.streaming_module()(xb, *zeros)[0]
    assert ref.shape == (2, block)
    np.testing.assert_allclose(graph.numpy(), ref.numpy(), rtol=0, atol=1e-12)


def test_the_shared_core_and_audio_never_import_timeseries_code():
    """tinyverse/timeseries holds what only that modality uses; the core and audio must not depend on it (the
    registries name its modules as lazily imported built-ins, which is how a modality plugs in)."""
    graph = import_graph()
    offenders = sorted(f"{mod} -> {dep}" for mod, deps in graph.items()
                       if mod.startswith("tinyverse.") and not mod.startswith("tinyverse.timeseries")
                       for dep in deps if dep.startswith("tinyverse.timeseries"))
    assert not offenders, offenders


def test_builtin_modalities_implement_the_stage_contract():
    """Both modalities run through AIModule.run (describe → train → test → compile): no modality re-implements it."""
    from modelmaker.ai_modules import AI_MODULES
    from modelmaker.ai_modules.base import AIModule

    for name in ("timeseries", "audio"):
        cls = AI_MODULES.get(name)
        assert issubclass(cls, AIModule) and cls.run is AIModule.run, name
        for stage in ("load_data", "prepare", "describe", "train", "test", "compile"):
            assert getattr(cls, stage) is not getattr(AIModule, stage), (name, stage)


def test_a_builtin_registration_does_not_import_the_other_builtins():
    """Registries import their built-in modules by name (edges the AST graph cannot see). A tinyverse module
    registering at import must not trigger that import from inside its own (one built-in may import it back
    half-initialised); a user's registration still does, so a clash with a built-in is reported at once."""
    import subprocess
    import sys

    from tinyverse.registry import Registry, RegistryError

    reg = Registry("thing", builtins=["tinyverse.no_such_module"])
    assert reg.register("ours", Registry) is Registry  # a tinyverse object: no builtin import (none exists)
    with pytest.raises(ModuleNotFoundError):
        reg.register("user_thing", np.ndarray)  # a user's registration loads the built-ins first
    user = Registry("thing", builtins=["tinyverse.audio.metrics"])
    user.register("dup", Registry)
    with pytest.raises(RegistryError, match="already registered"):
        user.register("dup", np.ndarray)
    # the regression: the amp task's module imported first, before any lookup
    proc = subprocess.run([sys.executable, "-c", "import tinyverse.audio.training\n"
                           "from tinyverse.registry import TASKS\nassert 'knob_modelling' in TASKS.names()"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
