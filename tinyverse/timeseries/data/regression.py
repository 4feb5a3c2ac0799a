"""Regression data: a value (or several) per series.

Two ``DATASETS`` entries:

- ``ucr_regression``: the UCR/UEA time-series extrinsic regression sets that ship offline (sktime's wheel holds
  Tecator: 100-point NIR absorbance spectra of meat, target = fat content in %; 172 train / 43 test), with the
  official train/test split; validation is a seeded ``val_fraction`` of the official train split, stratified
  by target quintile.
- ``regression_files``: bring your own CSV / NPY files (layout in :class:`RegressionFilesDataset`).

Inputs are standardised per channel with statistics of the train split (``normalize``); targets are
standardised with the train split's mean/std (``standardize_target``) and the scaler is kept in
``info["target_scaler"]``, so the regression task reports RMSE / MAE in the target's own units.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tinyverse.registry import DATASETS, closest
from .folder import TIME_COLUMN  # time, timestamp, t, ... (dropped from the default inputs)
from .normalize import normalize_splits
from .splits import DatasetError, TimeSeriesData, check_fractions, stratified_split
from .targets import TargetScaler
from .ucr import edge_pad, nested_to_arrays, offline_sets, package_version

_SPLITS = ("train", "val", "test")
_EXTENSIONS = (".csv", ".npy")


def quantile_bins(y: np.ndarray, bins: int = 5) -> np.ndarray:
    """Bin index of each target by the quantiles of the first target value (for a stratified val split)."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
    bins = max(1, min(bins, len(y) // 4))
    edges = np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, y, side="right")


def _finish(X: dict, y: dict, name: str, info: dict, normalize: bool, standardize_target: bool) -> TimeSeriesData:
    """Normalise inputs and targets with train statistics; record both in ``info``."""
    X, info["normalization"] = normalize_splits(X, normalize)
    y = {s: np.asarray(v, dtype=np.float64).reshape(len(v), -1) for s, v in y.items()}
    if standardize_target:
        scaler = TargetScaler().fit(y["train"])
        y = {s: scaler.transform(v) if len(v) else v.astype(np.float32) for s, v in y.items()}
        info["target_scaler"] = scaler.to_dict()
    else:
        info["target_scaler"] = None
    data = TimeSeriesData(X["train"], y["train"], X["val"], y["val"], X["test"], y["test"], [], name, info)
    info["counts"] = data.summary()["counts"]
    return data


@DATASETS.register("ucr_regression")
class UCRRegressionDataset:
    """A UCR/UEA regression set by name (default Tecator) with its official train/test split."""

    def __init__(self, ucr_name: str = "Tecator", val_fraction: float = 0.2, normalize: bool = True,
                 standardize_target: bool = True, seed: int = 42):
        check_fractions(val_fraction)
        self.ucr_name = ucr_name
        self.val_fraction = float(val_fraction)
        self.normalize = bool(normalize)
        self.standardize_target = bool(standardize_target)
        self.seed = int(seed)

    @staticmethod
    def available() -> list[str]:
        """Every regression set found offline (``@targetLabel true``)."""
        return sorted((n for n, s in offline_sets().items()
                       if s.header.get("targetlabel", "").split()[:1] == ["true"]), key=str.lower)

    def load(self) -> TimeSeriesData:
        names = self.available()
        folded = [n for n in names if n.lower() == str(self.ucr_name).lower()]
        if len(folded) != 1:
            hint = closest(str(self.ucr_name), names)
            did = f"did you mean {' or '.join(repr(h) for h in hint)}? " if hint else ""
            raise DatasetError(f"dataset.ucr_name: '{self.ucr_name}' is not a regression set found offline; {did}"
                               f"(available: {', '.join(names) or 'none'}; classification sets use dataset.name: ucr)")
        entry = offline_sets()[folded[0]]
        from sktime.datasets import load_from_tsfile

        raw = {}
        for split, path in (("train", entry.train), ("test", entry.test)):
            X, y = load_from_tsfile(str(path), return_data_type="nested_univ")
            try:
                targets = np.asarray(y, dtype=np.float64)
            except ValueError:
                raise DatasetError(f"dataset.ucr_name: '{entry.name}' has non-numeric targets in {path}") from None
            raw[split] = (nested_to_arrays(X), targets)
        max_len = max(a.shape[1] for s in raw for a in raw[s][0])
        arrays = {s: np.stack([np.stack([edge_pad(c, max_len) for c in a]) for a in raw[s][0]]).astype(np.float32)
                  for s in raw}
        for split, X in arrays.items():
            if not np.isfinite(X).all() or not np.isfinite(raw[split][1]).all():
                raise DatasetError(f"dataset.ucr_name: '{entry.name}' has missing values in its {split} split")
        rows = np.arange(len(raw["train"][1]))
        train_rows, val_rows, _, _ = stratified_split(rows, quantile_bins(raw["train"][1]), self.val_fraction,
                                                      self.seed)
        train_rows, val_rows = np.sort(train_rows), np.sort(val_rows)
        X = {"train": arrays["train"][train_rows], "val": arrays["train"][val_rows], "test": arrays["test"]}
        y = {"train": raw["train"][1][train_rows], "val": raw["train"][1][val_rows], "test": raw["test"][1]}
        info: dict[str, Any] = {
            "source": "ucr_regression",
            "provenance": {"package": entry.package, "package_version": package_version(entry.package),
                           "train_file": str(entry.train), "test_file": str(entry.test),
                           "split": "official train/test; val = fraction of official train, stratified by target "
                                    "quintile"},
            "ucr_name": entry.name,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "val_rows_of_official_train": [int(i) for i in val_rows],
            "target_range": [float(min(v.min() for v in y.values() if len(v))),
                             float(max(v.max() for v in y.values() if len(v)))],
        }
        return _finish(X, y, entry.name, info, self.normalize, self.standardize_target)


@DATASETS.register("regression_files")
class RegressionFilesDataset:
    """Bring-your-own regression data: CSV / NPY files with input columns and a target column.

    Layout::

        <path>/files/*.csv|*.npy                       one recording per file: rows = time steps (or samples)
        <path>/annotations/{train,val,test}_list.txt   optional: fixed splits (file names, one per line)

    A CSV has a header row naming its columns; ``target_column`` names the value to predict (a list for several)
    and ``input_columns`` the inputs (default: every other column except a time column such as ``time`` or
    ``timestamp``). For an NPY file (2-D, rows x columns) give column indices instead of names.

    - ``window`` set: each file is cut into windows of ``window`` rows every ``stride`` rows (default: no
      overlap); a window's inputs are its input columns, shaped (channels = inputs, length = window), and its
      target is the target column at the window's last row (``target_at: last``) or its mean over the window
      (``target_at: mean``).
    - ``window`` left out: one row is one sample; its input values form a (channels = inputs, length = 1)
      sample (use an MLP such as ``REGR_MLP_1k``).

    Splits: the annotation lists when present (a missing val or test list is carved from the train files); else
    by file when there are >= 3 files (seeded shuffle; ``val_fraction`` / ``test_fraction`` of the files, at least
    one each); else in time within each file (first rows train, then val, the last ``test_fraction`` test;
    no window crosses a boundary). Rows of independent samples should be shuffled into several files first.
    """

    def __init__(self, path: str, target_column: str | int | list[str | int],
                 input_columns: list[str | int] | None = None,
                 window: int | None = None, stride: int | None = None, target_at: str = "last",
                 val_fraction: float = 0.2, test_fraction: float = 0.2, normalize: bool = True,
                 standardize_target: bool = True, seed: int = 42):
        if window is not None and (not isinstance(window, int) or window < 1):
            raise DatasetError(f"dataset.window: must be a positive number of rows (or left out), got {window!r}")
        if stride is not None and (not isinstance(stride, int) or stride < 1):
            raise DatasetError(f"dataset.stride: must be a positive number of rows, got {stride!r}")
        if target_at not in ("last", "mean"):
            raise DatasetError(f"dataset.target_at: must be 'last' or 'mean', got {target_at!r}")
        check_fractions(val_fraction, test_fraction)
        self.path = Path(path).expanduser()
        self.targets = list(target_column) if isinstance(target_column, (list, tuple)) else [target_column]
        self.inputs = list(input_columns) if input_columns else None
        self.window = window
        self.stride = stride or window or 1
        self.target_at = target_at
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.normalize, self.standardize_target = bool(normalize), bool(standardize_target)
        self.seed = int(seed)

    # -- reading --------------------------------------------------------------------------------------------
    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            raise DatasetError(f"dataset.path: folder '{self.path}' does not exist")
        folder = self.path / "files"
        if not folder.is_dir():
            raise DatasetError(f"dataset.path: folder '{self.path}' has no 'files/' subfolder; put recordings in "
                               f"'{folder}/*.csv|*.npy'")
        files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in _EXTENSIONS
                       and not f.name.startswith("."))
        if not files:
            raise DatasetError(f"dataset.path: '{folder}' has no *.csv or *.npy files")
        return files

    def _read(self, file: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(inputs (L, C), targets (L, K), input names) of one file."""
        if file.suffix.lower() == ".npy":
            try:
                arr = np.load(file, allow_pickle=False)
            except ValueError as e:
                raise DatasetError(f"dataset.path: cannot read '{file}' as a numeric .npy array ({e})") from None
            if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
                raise DatasetError(f"dataset.path: '{file}' must hold a numeric (rows, columns) array, got "
                                   f"{arr.dtype} {arr.shape}")
            names = [str(i) for i in range(arr.shape[1])]

            def col(c: Any, key: str) -> int:
                if isinstance(c, bool) or not isinstance(c, int) or not -arr.shape[1] <= c < arr.shape[1]:
                    raise DatasetError(f"dataset.{key}: '{file}' is a .npy file with {arr.shape[1]} columns; give "
                                       f"column indices 0..{arr.shape[1] - 1}, got {c!r}")
                return c % arr.shape[1]
            t_idx = [col(c, "target_column") for c in self.targets]
            i_idx = [col(c, "input_columns") for c in self.inputs] if self.inputs else \
                [i for i in range(arr.shape[1]) if i not in t_idx]
            table, names_used = arr.astype(np.float64), [names[i] for i in i_idx]
            return table[:, i_idx], table[:, t_idx], names_used
        import pandas as pd

        try:
            df = pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DatasetError(f"dataset.path: cannot parse CSV '{file}' ({str(e).splitlines()[0]})") from None
        df.columns = [str(c).strip() for c in df.columns]
        targets = [str(c) for c in self.targets]
        missing = [c for c in targets if c not in df.columns]
        if missing:
            hint = closest(missing[0], list(df.columns))
            raise DatasetError(f"dataset.target_column: '{file}' has no column {missing[0]!r}"
                               + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (columns: {list(df.columns)})")
        if self.inputs:
            inputs = [str(c) for c in self.inputs]
            missing = [c for c in inputs if c not in df.columns]
            if missing:
                raise DatasetError(f"dataset.input_columns: '{file}' has no column(s) {missing}; its columns are "
                                   f"{list(df.columns)}")
        else:
            inputs = [c for c in df.columns if c not in targets and not TIME_COLUMN.fullmatch(c)]
        if not inputs:
            raise DatasetError(f"dataset.input_columns: '{file}' has no input column besides the target")
        try:
            return df[inputs].to_numpy(np.float64), df[targets].to_numpy(np.float64), inputs
        except (ValueError, TypeError):
            raise DatasetError(f"dataset.path: CSV '{file}' has non-numeric values in {inputs + targets}") from None

    def _samples(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows → (n, C, window) inputs and (n, K) targets."""
        if self.window is None:
            return inputs[:, :, None].astype(np.float32), targets
        W = self.window
        if len(inputs) < W:
            return np.zeros((0, inputs.shape[1], W), np.float32), np.zeros((0, targets.shape[1]))
        starts = np.arange(0, len(inputs) - W + 1, self.stride)
        X = np.stack([inputs[s:s + W].T for s in starts]).astype(np.float32)
        y = np.stack([targets[s + W - 1] if self.target_at == "last" else targets[s:s + W].mean(axis=0)
                      for s in starts])
        return X, y

    def _annotations(self, files: list[Path]) -> dict[str, list[Path]] | None:
        ann = self.path / "annotations"
        lists = {s: ann / f"{s}_list.txt" for s in _SPLITS}
        if not any(p.is_file() for p in lists.values()):
            return None
        if not lists["train"].is_file():
            raise DatasetError(f"dataset.path: '{ann}' has split lists but no train_list.txt; add it")
        by_name = {f.name: f for f in files}
        out: dict[str, list[Path]] = {}
        for split, list_file in lists.items():
            if not list_file.is_file():
                continue
            out[split] = []
            for line in list_file.read_text(encoding="utf-8").splitlines():
                name = Path(line.strip()).name
                if not name or line.strip().startswith("#"):
                    continue
                if name not in by_name:
                    raise DatasetError(f"dataset.path: '{list_file}' lists '{line.strip()}', which is not a file in "
                                       f"'{self.path / 'files'}'")
                out[split].append(by_name[name])
        return out

    def _split_files(self, files: list[Path]) -> dict[str, list[Path]]:
        order = np.random.default_rng(self.seed).permutation(len(files))
        n = len(files)
        n_test = min(max(1, round(n * self.test_fraction)) if self.test_fraction else 0, n - 1)
        n_val = min(max(1, round(n * self.val_fraction)) if self.val_fraction else 0, max(0, n - 1 - n_test))
        return {"test": [files[i] for i in order[:n_test]], "val": [files[i] for i in order[n_test:n_test + n_val]],
                "train": [files[i] for i in order[n_test + n_val:]]}

    def load(self) -> TimeSeriesData:
        files = self._files()
        tables = {f: self._read(f) for f in files}
        names = next(iter(tables.values()))[2]
        for f, (inp, tgt, n) in tables.items():
            if n != names:
                raise DatasetError(f"dataset.input_columns: '{f}' gives inputs {n}, '{files[0]}' gives {names}; "
                                   f"every file needs the same input columns (name them with input_columns)")
            if not (np.isfinite(inp).all() and np.isfinite(tgt).all()):
                raise DatasetError(f"dataset.path: '{f}' contains NaN or inf values (or empty cells); clean it")
        split_files = self._annotations(files)
        if split_files is not None:
            mode = "annotations"
            listed = {s: s in split_files for s in ("val", "test")}
            if not all(listed.values()):
                carved = self._split_files(split_files["train"])
                split_files["train"] = carved["train"]
                for s in ("val", "test"):
                    split_files.setdefault(s, carved[s] if not listed[s] else [])
        elif len(files) >= 3:
            mode, split_files = "file", self._split_files(files)
        else:
            mode, split_files = "time", None
        C, K = len(names), len(self.targets)
        W = self.window or 1
        X: dict[str, list[np.ndarray]] = {s: [] for s in _SPLITS}
        y: dict[str, list[np.ndarray]] = {s: [] for s in _SPLITS}
        if split_files is not None:
            for s in _SPLITS:
                for f in split_files.get(s, []):
                    xs, ys = self._samples(*tables[f][:2])
                    X[s].append(xs)
                    y[s].append(ys)
        else:
            for f, (inp, tgt, _) in tables.items():
                L = len(inp)
                b = int(round(L * (1 - self.val_fraction - self.test_fraction)))
                c = int(round(L * (1 - self.test_fraction)))
                for s, lo, hi in (("train", 0, b), ("val", b, c), ("test", c, L)):
                    xs, ys = self._samples(inp[lo:hi], tgt[lo:hi])
                    X[s].append(xs)
                    y[s].append(ys)
        Xs = {s: np.concatenate(v) if v else np.zeros((0, C, W), np.float32) for s, v in X.items()}
        ys = {s: np.concatenate(v) if v else np.zeros((0, K)) for s, v in y.items()}
        if len(ys["train"]) == 0:
            raise DatasetError(f"dataset.path: no training samples from '{self.path}'; add rows or lower window "
                               f"/ val_fraction / test_fraction")
        for s in ("val", "test"):
            if len(ys[s]) == 0 and (self.val_fraction if s == "val" else self.test_fraction) > 0:
                warnings.warn(f"'{self.path}': the {s} split is empty (too few rows or files)", stacklevel=2)
        info: dict[str, Any] = {
            "source": "regression_files",
            "provenance": {"path": str(self.path.resolve()), "layout": "files/*.csv|*.npy"},
            "input_columns": names, "target_columns": [str(t) for t in self.targets],
            "window": self.window, "stride": self.stride if self.window else None,
            "target_at": self.target_at if self.window else "row",
            "split_mode": mode, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
            "seed": self.seed,
            "files": {s: [f.name for f in split_files.get(s, [])] for s in _SPLITS} if split_files is not None
            else {"all (split in time)": [f.name for f in files]},
        }
        return _finish(Xs, ys, self.path.name, info, self.normalize, self.standardize_target)
