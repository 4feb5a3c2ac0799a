"""Bring-your-own recordings in TI Tiny ML Tensorlab's layout: ``<path>/classes/<label>/*.csv|*.npy``.

Each file is one recording (rows = time, columns = channels), cut into fixed windows. Splits are made by
file whenever possible so windows of one recording never land in two splits.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from tinyverse.registry import DATASETS
from .normalize import normalize_splits
from .splits import DatasetError, TimeSeriesData, check_fractions, label_sort_key, stratified_split

_EXTENSIONS = (".csv", ".npy")
# time, Time, timestamp, time_s, "time (s)", timestamp_ms, t, ts — but not temperature or t_x
TIME_COLUMN = re.compile(r"(time|timestamp|ts)([\s_(\[].*)?|t", re.IGNORECASE)
_SPLITS = ("train", "val", "test")
_MIN_FILES_PER_CLASS = 3  # one file each for train, val and test


@DATASETS.register("folder")
class ClassFolderDataset:
    """Class-folder recordings cut into ``frame_size`` windows with ``stride``.

    Split by file when every class has >= 3 files, otherwise by window (stratified);
    ``<path>/annotations/{train,val,test}_list.txt`` (file paths, one per line), when present, define the
    splits instead (a missing val or test list is carved from the listed train files).
    """

    def __init__(self, path: str, frame_size: int = 256, stride: int | None = None, val_fraction: float = 0.2,
                 test_fraction: float = 0.2, normalize: bool = True, seed: int = 42,
                 channels: list[str] | None = None):
        if int(frame_size) < 1:
            raise DatasetError(f"dataset.frame_size: must be a positive number of samples, got {frame_size}")
        if stride is not None and int(stride) < 1:
            raise DatasetError(f"dataset.stride: must be a positive number of samples, got {stride}")
        check_fractions(val_fraction, test_fraction)
        self.path = Path(path).expanduser()
        self.frame_size = int(frame_size)
        self.stride = int(stride) if stride is not None else self.frame_size
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.normalize = bool(normalize)
        self.seed = int(seed)
        self.channels = list(channels) if channels else None

    # -- discovery and reading ------------------------------------------------------------------------------
    def _class_files(self) -> dict[str, list[Path]]:
        if not self.path.is_dir():
            raise DatasetError(f"dataset.path: folder '{self.path}' does not exist")
        classes_dir = self.path / "classes"
        if not classes_dir.is_dir():
            raise DatasetError(f"dataset.path: folder '{self.path}' has no 'classes/' subfolder; "
                               f"put recordings in '{classes_dir}/<label>/*.csv|*.npy'")
        class_dirs = sorted((d for d in classes_dir.iterdir() if d.is_dir() and not d.name.startswith(".")),
                            key=lambda d: label_sort_key(d.name))
        if not class_dirs:
            raise DatasetError(f"dataset.path: '{classes_dir}' has no class folders; "
                               f"make one folder per label holding its *.csv or *.npy recordings")
        out = {}
        for d in class_dirs:
            files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in _EXTENSIONS
                           and not f.name.startswith("."))
            if not files:
                raise DatasetError(f"dataset.path: class folder '{d}' has no *.csv or *.npy files; "
                                   f"add recordings or remove the folder")
            out[d.name] = files
        return out

    def _read(self, file: Path) -> tuple[np.ndarray, list[str]]:
        """One recording as (L, C) float64 plus its channel names."""
        if file.suffix.lower() == ".npy":
            data, names = self._read_npy(file)
        else:
            data, names = self._read_csv(file)
        if data.size and not np.isfinite(data).all():
            raise DatasetError(f"dataset.path: file '{file}' contains NaN or inf values (or empty cells); "
                               f"clean or remove it")
        return data, names

    def _read_npy(self, file: Path) -> tuple[np.ndarray, list[str]]:
        try:
            data = np.load(file, allow_pickle=False)
        except ValueError as e:
            raise DatasetError(f"dataset.path: cannot read '{file}' as a numeric .npy array ({e})") from None
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
            raise DatasetError(f"dataset.path: '{file}' must hold a numeric array shaped (L,) or (L, C), "
                               f"got {data.dtype} {data.shape}")
        if self.channels:
            raise DatasetError(f"dataset.channels: selects CSV columns by name, but '{file}' is a .npy file "
                               f"without column names; drop dataset.channels or convert it to CSV")
        return data.astype(np.float64), [f"ch{i}" for i in range(data.shape[1])]

    def _read_csv(self, file: Path) -> tuple[np.ndarray, list[str]]:
        import pandas as pd

        with open(file, encoding="utf-8", errors="replace") as f:
            first = f.readline()
        has_header = not all(_is_number(tok) for tok in first.strip().split(",") if tok.strip())
        try:
            df = pd.read_csv(file, header=0 if has_header else None)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DatasetError(f"dataset.path: cannot parse CSV '{file}' ({str(e).splitlines()[0]})") from None
        df.columns = [str(c).strip() for c in df.columns] if has_header else [f"ch{i}" for i in range(df.shape[1])]
        if self.channels:
            missing = [c for c in self.channels if c not in df.columns]
            if missing:
                raise DatasetError(f"dataset.channels: '{file}' has no column(s) {missing}; "
                                   f"its columns are {list(df.columns)}")
            df = df[self.channels]
        else:
            df = df[[c for c in df.columns if not TIME_COLUMN.fullmatch(c)]]
        try:
            data = df.to_numpy(dtype=np.float64)
        except (ValueError, TypeError):
            raise DatasetError(f"dataset.path: CSV '{file}' has non-numeric values; every column but an "
                               f"optional header row and time column must be numbers") from None
        if data.shape[1] == 0:
            raise DatasetError(f"dataset.path: CSV '{file}' has no data columns")
        return data, list(df.columns)

    def _windows(self, data: np.ndarray) -> np.ndarray:
        """(L, C) recording → (n, C, frame_size) windows."""
        series = np.ascontiguousarray(data.T)  # (C, L)
        view = np.lib.stride_tricks.sliding_window_view(series, self.frame_size, axis=1)[:, :: self.stride]
        # float32 before fitting the normaliser, so its stats match the arrays a model (and an MCU) sees.
        return np.ascontiguousarray(view.transpose(1, 0, 2), dtype=np.float32)

    # -- splitting --------------------------------------------------------------------------------------
    def _annotation_lists(self, all_files: dict[Path, int]) -> dict[str, list[Path]] | None:
        ann = self.path / "annotations"
        lists = {s: ann / f"{s}_list.txt" for s in _SPLITS}
        if not any(p.is_file() for p in lists.values()):
            return None
        if not lists["train"].is_file():
            raise DatasetError(f"dataset.path: '{ann}' has split lists but no train_list.txt; add it")
        by_resolved = {f.resolve(): f for f in all_files}
        out: dict[str, list[Path]] = {}
        seen: dict[Path, str] = {}
        for split, list_file in lists.items():
            if not list_file.is_file():
                continue
            out[split] = []
            for line in list_file.read_text(encoding="utf-8").splitlines():
                rel = line.strip()
                if not rel or rel.startswith("#"):
                    continue
                # Entries may be relative to the dataset root or to classes/ (TI uses both styles).
                cands = [Path(rel), self.path / rel, self.path / "classes" / rel]
                hit = next((by_resolved[c.resolve()] for c in cands if c.resolve() in by_resolved), None)
                if hit is None:
                    raise DatasetError(f"dataset.path: '{list_file}' lists '{rel}', which is not a *.csv or *.npy "
                                       f"file under '{self.path / 'classes'}'; fix or remove the line")
                if hit in seen:
                    raise DatasetError(f"dataset.path: '{rel}' is listed in both {seen[hit]}_list.txt and "
                                       f"{split}_list.txt; a recording belongs to one split")
                seen[hit] = split
                out[split].append(hit)
        return out

    def _split_files(self, files: list[Path], labels: list[int], val_fraction: float,
                     test_fraction: float) -> dict[str, list[Path]]:
        """Per class: shuffle its files, give val and test at least one each, the rest to train."""
        rng = np.random.default_rng(self.seed)
        out: dict[str, list[Path]] = {s: [] for s in _SPLITS}
        for k in sorted(set(labels)):
            mine = [f for f, y in zip(files, labels) if y == k]
            order = rng.permutation(len(mine))
            n = len(mine)
            n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
            n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
            n_test, n_val = min(n_test, n - 1), min(n_val, max(0, n - 1 - n_test))  # train keeps >= 1
            out["test"] += [mine[i] for i in order[:n_test]]
            out["val"] += [mine[i] for i in order[n_test:n_test + n_val]]
            out["train"] += [mine[i] for i in order[n_test + n_val:]]
        return out

    # -- load -------------------------------------------------------------------------------------------
    def load(self) -> TimeSeriesData:
        class_files = self._class_files()
        class_names = list(class_files)
        file_label = {f: k for k, name in enumerate(class_names) for f in class_files[name]}

        windows: dict[Path, np.ndarray] = {}
        channel_names: list[str] | None = None
        first_file: Path | None = None
        skipped = []
        for f in file_label:
            data, names = self._read(f)
            if channel_names is None:
                channel_names, first_file = names, f
            elif len(names) != len(channel_names):
                raise DatasetError(f"dataset.path: '{f}' has {len(names)} channels but '{first_file}' has "
                                   f"{len(channel_names)}; every recording needs the same channels "
                                   f"(or select them with dataset.channels)")
            if len(data) < self.frame_size:
                warnings.warn(f"skipping '{f}': {len(data)} samples is shorter than frame_size={self.frame_size}",
                              stacklevel=2)
                skipped.append(self._rel(f))
                continue
            windows[f] = self._windows(data)
        empty = [c for k, c in enumerate(class_names) if not any(file_label[f] == k for f in windows)]
        if empty:
            raise DatasetError(f"dataset.frame_size: no recording of class(es) {empty} is at least "
                               f"{self.frame_size} samples long; lower frame_size or add longer recordings")

        split_files = self._annotation_lists(file_label)
        file_level = True
        if split_files is not None:
            split_mode = "annotations"
            split_files = {s: [f for f in split_files.get(s, []) if f in windows] for s in _SPLITS}
            if not split_files["train"]:
                raise DatasetError(f"dataset.path: annotations/train_list.txt under '{self.path}' selects no "
                                   f"usable recordings; list at least one training file")
            listed = {s: (self.path / "annotations" / f"{s}_list.txt").is_file() for s in ("val", "test")}
            if not all(listed.values()):  # missing val/test lists: carve them from the listed train files
                train = split_files["train"]
                carved = self._split_files(train, [file_label[f] for f in train],
                                           0.0 if listed["val"] else self.val_fraction,
                                           0.0 if listed["test"] else self.test_fraction)
                split_files["train"] = carved["train"]
                for s in ("val", "test"):
                    if not listed[s]:
                        split_files[s] = carved[s]
        else:
            counts = [sum(1 for f in windows if file_label[f] == k) for k in range(len(class_names))]
            file_level = min(counts) >= _MIN_FILES_PER_CLASS
            split_mode = "file" if file_level else "window"
            if file_level:
                usable = list(windows)
                split_files = self._split_files(usable, [file_label[f] for f in usable],
                                                self.val_fraction, self.test_fraction)

        if file_level:
            X = {s: _stack([windows[f] for f in split_files[s]], len(channel_names), self.frame_size)
                 for s in _SPLITS}
            y = {s: np.concatenate([np.full(len(windows[f]), file_label[f], dtype=np.int64)
                                    for f in split_files[s]] or [np.zeros(0, np.int64)]) for s in _SPLITS}
            info_files = {s: [self._rel(f) for f in split_files[s]] for s in _SPLITS}
        else:
            warnings.warn(f"'{self.path}': a class has fewer than {_MIN_FILES_PER_CLASS} usable recordings, so "
                          f"windows are split across train/val/test and windows of one recording may share "
                          f"splits (overlapping windows leak); add recordings for an honest test score",
                          stacklevel=2)
            all_X = np.concatenate(list(windows.values()))
            all_y = np.concatenate([np.full(len(w), file_label[f], dtype=np.int64) for f, w in windows.items()])
            rest_X, X_test, rest_y, y_test = stratified_split(all_X, all_y, self.test_fraction, self.seed)
            val_share = self.val_fraction / (1 - self.test_fraction)
            X_train, X_val, y_train, y_val = stratified_split(rest_X, rest_y, val_share, self.seed)
            X = {"train": X_train, "val": X_val, "test": X_test}
            y = {"train": y_train, "val": y_val, "test": y_test}
            info_files = {"all": [self._rel(f) for f in windows]}

        if len(y["train"]) == 0:
            raise DatasetError(f"dataset.path: no training windows from '{self.path}'; add recordings or lower "
                               f"frame_size / val_fraction / test_fraction")

        info: dict = {
            "source": "folder",
            "provenance": {"path": str(self.path.resolve()), "layout": "classes/<label>/*.csv|*.npy"},
            "frame_size": self.frame_size,
            "stride": self.stride,
            "channel_names": channel_names,
            "split_mode": split_mode,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "files": info_files,
            "windows_per_file": {self._rel(f): int(len(w)) for f, w in windows.items()},
            "skipped_short_files": skipped,
        }
        X, info["normalization"] = normalize_splits(X, self.normalize)
        data = TimeSeriesData(X["train"], y["train"], X["val"], y["val"], X["test"], y["test"],
                              class_names, self.path.name, info)
        info["counts"] = data.summary()["counts"]
        return data

    def _rel(self, f: Path) -> str:
        try:
            return f.relative_to(self.path / "classes").as_posix()
        except ValueError:
            return str(f)


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _stack(parts: list[np.ndarray], channels: int, frame: int) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0, channels, frame), dtype=np.float32)
