"""The time-series data layer: offline UCR/UEA sets and bring-your-own class folders."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from tinyverse.timeseries.data import (ChannelNormalizer, ClassFolderDataset, DatasetError, TimeSeriesData, UCRDataset,
                            sort_labels, stratified_split)
from tinyverse.registry import DATASETS


@pytest.fixture(scope="module")
def gunpoint() -> TimeSeriesData:
    return UCRDataset("GunPoint").load()


@pytest.fixture(scope="module")
def gunpoint_raw() -> TimeSeriesData:
    return UCRDataset("GunPoint", normalize=False).load()


# -- registry and helpers ----------------------------------------------------------------------------------
def test_registered():
    assert DATASETS.get("ucr") is UCRDataset
    assert DATASETS.get("folder") is ClassFolderDataset


def test_numeric_aware_label_sort():
    assert sort_labels(["10", "2", "1", "b", "a", "2"]) == ["1", "2", "10", "a", "b"]


def test_stratified_split_falls_back_when_a_class_is_tiny():
    X = np.arange(10)
    y = np.array([0] * 9 + [1])
    with pytest.warns(UserWarning, match="without stratification"):
        rest, held, y_rest, y_held = stratified_split(X, y, 0.3, seed=0)
    assert len(held) == 3 and sorted(np.concatenate([rest, held]).tolist()) == list(range(10))


def test_normalizer_roundtrip_and_std_floor():
    X = np.stack([np.ones((4, 10)), np.random.default_rng(0).normal(3, 2, (4, 10))], axis=1)  # (4, 2, 10)
    norm = ChannelNormalizer().fit(X)
    Z = norm.transform(X)
    assert np.all(np.isfinite(Z)) and np.allclose(Z[:, 0], 0)  # constant channel: no division by zero
    assert abs(Z[:, 1].mean()) < 1e-5 and abs(Z[:, 1].std() - 1) < 1e-4
    again = ChannelNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(again.transform(X), Z)


# -- UCR / UEA ---------------------------------------------------------------------------------------------
def test_gunpoint_shapes(gunpoint):
    d = gunpoint
    assert d.num_classes == 2 and d.class_names == ["1", "2"]
    assert d.input_shape == (1, 150)
    assert len(d.X_train) + len(d.X_val) == 50 and len(d.X_test) == 150
    assert len(d.X_val) == 10
    for X, y in ((d.X_train, d.y_train), (d.X_val, d.y_val), (d.X_test, d.y_test)):
        assert X.dtype == np.float32 and y.dtype == np.int64
        assert set(np.unique(y)) <= {0, 1}
    json.dumps(d.summary())
    json.dumps(d.info)
    assert d.summary()["counts"] == {"train": 40, "val": 10, "test": 150}


def test_gunpoint_val_is_stratified_and_disjoint(gunpoint, gunpoint_raw):
    d = gunpoint_raw
    full = np.concatenate([d.y_train, d.y_val])
    train_share = np.bincount(full) / len(full)
    val_share = np.bincount(d.y_val, minlength=2) / len(d.y_val)
    assert np.allclose(val_share, train_share, atol=0.1)
    # No validation series also appears in the training split.
    train_rows = {row.tobytes() for row in d.X_train}
    assert not any(row.tobytes() in train_rows for row in d.X_val)
    val_rows = d.info["val_rows_of_official_train"]
    assert len(set(val_rows)) == len(d.y_val)
    # Same seed → same split whether normalised or not.
    assert gunpoint.info["val_rows_of_official_train"] == val_rows


def test_normaliser_stats_come_from_train_only(gunpoint, gunpoint_raw):
    stats = gunpoint.info["normalization"]
    X = gunpoint_raw.X_train.astype(np.float64)
    np.testing.assert_allclose(stats["mean"], X.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], X.std(axis=(0, 2)), rtol=1e-12)
    # The stored stats reproduce the normalised test split from the raw one.
    norm = ChannelNormalizer.from_dict(stats)
    np.testing.assert_allclose(norm.transform(gunpoint_raw.X_test), gunpoint.X_test, atol=1e-5)
    assert gunpoint_raw.info["normalization"] is None


@pytest.mark.parametrize("name, n_train, n_test, shape, classes", [
    ("ArrowHead", 36, 175, (1, 251), 3),
    ("ItalyPowerDemand", 67, 1029, (1, 24), 2),
    ("OSULeaf", 200, 242, (1, 427), 6),
    ("ACSF1", 100, 100, (1, 1460), 10),
    ("BasicMotions", 40, 40, (6, 100), 4),
])
def test_documented_shapes(name, n_train, n_test, shape, classes):
    d = UCRDataset(name).load()
    assert len(d.y_train) + len(d.y_val) == n_train and len(d.y_test) == n_test
    assert d.input_shape == shape and d.num_classes == classes
    assert d.info["equal_length"]


def test_basicmotions_six_channels():
    d = UCRDataset("BasicMotions").load()
    assert d.num_channels == 6
    assert len(d.info["normalization"]["mean"]) == 6
    assert d.class_names == sorted(d.class_names)


def test_japanese_vowels_variable_length_is_edge_padded():
    d = UCRDataset("JapaneseVowels", normalize=False).load()
    assert d.num_channels == 12 and d.num_classes == 9
    assert d.class_names == [str(i) for i in range(1, 10)]
    assert len(d.y_train) + len(d.y_val) == 270 and len(d.y_test) == 370
    lengths = d.info["original_lengths"]
    assert not d.info["equal_length"]
    assert d.length == max(max(v) for v in lengths.values()) == 29
    assert min(min(v) for v in lengths.values()) == 7
    # A short series is padded with its own last value.
    i = int(np.argmin(lengths["test"]))
    n = lengths["test"][i]
    assert n < d.length
    tail = d.X_test[i, :, n:]
    assert np.array_equal(tail, np.repeat(d.X_test[i, :, n - 1:n], d.length - n, axis=1))


def test_misspelt_name_suggests():
    with pytest.raises(DatasetError) as e:
        UCRDataset("GunPiont").load()
    msg = str(e.value)
    assert "dataset.ucr_name" in msg and "'GunPiont'" in msg and "did you mean 'GunPoint'" in msg
    assert "\n" not in msg


def test_available_lists_the_offline_sets():
    names = UCRDataset.available()
    for n in ("GunPoint", "ArrowHead", "ItalyPowerDemand", "OSULeaf", "ACSF1", "BasicMotions", "JapaneseVowels"):
        assert n in names
    assert "Tecator" not in names  # a regression set


# -- class folders -----------------------------------------------------------------------------------------
FRAME = 32


def _make_folder(root: Path, files_per_class: int = 3, lengths: tuple[int, ...] = (100, 64, 80),
                 channels: int = 2) -> Path:
    """Class 'a' as CSV with a header and a time column, class 'b' as NPY (L, C); distinct values per file."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / "classes" / label).mkdir(parents=True)
    for i in range(files_per_class):
        L = lengths[i % len(lengths)]
        x = rng.normal(size=(L, channels)) + i
        header = "time," + ",".join(f"acc{c}" for c in range(channels))
        rows = [f"{t / 100:.2f}," + ",".join(f"{v:.6f}" for v in x[t]) for t in range(L)]
        (root / "classes" / "a" / f"rec{i}.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
        np.save(root / "classes" / "b" / f"rec{i}.npy", rng.normal(size=(L, channels)) + 10 + i)
    return root


def _windows(L: int, frame: int = FRAME, stride: int = FRAME) -> int:
    return 0 if L < frame else 1 + (L - frame) // stride


def test_folder_window_counts_and_file_split(tmp_path):
    root = _make_folder(tmp_path, files_per_class=5, lengths=(100, 64, 80))
    d = ClassFolderDataset(str(root), frame_size=FRAME, stride=16, normalize=False).load()
    assert d.input_shape == (2, FRAME) and d.class_names == ["a", "b"]
    assert d.info["split_mode"] == "file"
    assert d.info["channel_names"] == ["acc0", "acc1"]  # time column dropped
    expected = sum(_windows(L, FRAME, 16) for L in (100, 64, 80, 100, 64)) * 2
    total = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert total == expected == sum(d.info["windows_per_file"].values())
    assert d.info["windows_per_file"]["a/rec0.csv"] == _windows(100, FRAME, 16)
    # Every class in every split, and no recording in two splits.
    files = d.info["files"]
    assert set().union(*map(set, files.values())) == set(d.info["windows_per_file"])
    for s1, s2 in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(files[s1]) & set(files[s2])
    for y in (d.y_train, d.y_val, d.y_test):
        assert set(np.unique(y)) == {0, 1}
    # No window content is shared across splits either.
    train_rows = {w.tobytes() for w in d.X_train}
    assert not any(w.tobytes() in train_rows for w in np.concatenate([d.X_val, d.X_test]))
    # First CSV window equals the file's first frame_size rows (channels first).
    raw = np.loadtxt(root / "classes" / "a" / "rec0.csv", delimiter=",", skiprows=1)[:, 1:]
    split = next(s for s in ("train", "val", "test") if "a/rec0.csv" in files[s])
    offset = sum(d.info["windows_per_file"][f] for f in files[split][:files[split].index("a/rec0.csv")])
    np.testing.assert_allclose(d.split(split)[0][offset], raw[:FRAME].T, rtol=1e-6)


def test_folder_normalisation_fitted_on_train(tmp_path):
    root = _make_folder(tmp_path, files_per_class=4)
    raw = ClassFolderDataset(str(root), frame_size=FRAME, normalize=False).load()
    d = ClassFolderDataset(str(root), frame_size=FRAME).load()
    X = raw.X_train.astype(np.float64)
    np.testing.assert_allclose(d.info["normalization"]["mean"], X.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(d.info["normalization"]["std"], X.std(axis=(0, 2)), rtol=1e-12)
    # Class means differ by ~10 and files by ~1, so stats over every split would differ visibly.
    everything = np.concatenate([raw.X_train, raw.X_val, raw.X_test]).astype(np.float64)
    assert not np.allclose(d.info["normalization"]["mean"], everything.mean(axis=(0, 2)), rtol=1e-3)


def test_folder_few_files_split_by_window(tmp_path):
    root = _make_folder(tmp_path, files_per_class=2, lengths=(320,))
    with pytest.warns(UserWarning, match="fewer than 3"):
        d = ClassFolderDataset(str(root), frame_size=FRAME).load()
    assert d.info["split_mode"] == "window"
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 2 * 2 * 10
    for y in (d.y_train, d.y_val, d.y_test):
        assert set(np.unique(y)) == {0, 1}


def test_folder_short_recording_skipped_with_warning(tmp_path):
    root = _make_folder(tmp_path, files_per_class=4, lengths=(100, 64, 80, 10))
    with pytest.warns(UserWarning, match="shorter than frame_size"):
        d = ClassFolderDataset(str(root), frame_size=FRAME).load()
    assert sorted(d.info["skipped_short_files"]) == ["a/rec3.csv", "b/rec3.npy"]


def test_folder_annotations_define_splits(tmp_path):
    root = _make_folder(tmp_path, files_per_class=3)
    ann = root / "annotations"
    ann.mkdir()
    (ann / "train_list.txt").write_text("a/rec0.csv\nclasses/b/rec0.npy\na/rec1.csv\nb/rec1.npy\n")
    (ann / "val_list.txt").write_text("a/rec2.csv\n")
    (ann / "test_list.txt").write_text("b/rec2.npy\n")
    d = ClassFolderDataset(str(root), frame_size=FRAME).load()
    assert d.info["split_mode"] == "annotations"
    assert sorted(d.info["files"]["train"]) == ["a/rec0.csv", "a/rec1.csv", "b/rec0.npy", "b/rec1.npy"]
    assert d.info["files"]["val"] == ["a/rec2.csv"] and d.info["files"]["test"] == ["b/rec2.npy"]
    assert set(d.y_val) == {0} and set(d.y_test) == {1}
    assert len(d.y_val) == _windows(80) and len(d.y_test) == _windows(80)


def test_folder_channel_selection(tmp_path):
    root = tmp_path / "ds"
    (root / "classes" / "x").mkdir(parents=True)
    (root / "classes" / "y").mkdir(parents=True)
    for label in ("x", "y"):
        for i in range(3):
            rows = "\n".join(f"{t},{t + i},{-t}" for t in range(64))
            (root / "classes" / label / f"r{i}.csv").write_text("timestamp,gx,gy\n" + rows + "\n")
    d = ClassFolderDataset(str(root), frame_size=FRAME, channels=["gy"], normalize=False).load()
    assert d.num_channels == 1 and d.info["channel_names"] == ["gy"]
    assert d.X_train.max() <= 0
    with pytest.raises(DatasetError, match="gz"):
        ClassFolderDataset(str(root), frame_size=FRAME, channels=["gz"]).load()


def _error(path: Path, **kw) -> str:
    with pytest.raises(DatasetError) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ClassFolderDataset(str(path), frame_size=FRAME, **kw).load()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_folder_errors(tmp_path):
    missing = tmp_path / "nope"
    assert f"folder '{missing}' does not exist" in _error(missing)

    (tmp_path / "noclasses").mkdir()
    msg = _error(tmp_path / "noclasses")
    assert "classes/" in msg and str(tmp_path / "noclasses") in msg

    root = _make_folder(tmp_path / "emptyclass")
    (root / "classes" / "c").mkdir()
    msg = _error(root)
    assert str(root / "classes" / "c") in msg and "no *.csv or *.npy" in msg

    root = _make_folder(tmp_path / "channels")
    np.save(root / "classes" / "b" / "rec9.npy", np.zeros((100, 3)))
    msg = _error(root)
    assert "rec9.npy" in msg and "3 channels" in msg and str(root) in msg

    root = _make_folder(tmp_path / "nan")
    bad = np.ones((100, 2))
    bad[5, 1] = np.nan
    np.save(root / "classes" / "b" / "bad.npy", bad)
    msg = _error(root)
    assert str(root / "classes" / "b" / "bad.npy") in msg and "NaN" in msg

    root = _make_folder(tmp_path / "inf")
    (root / "classes" / "a" / "inf.csv").write_text("acc0,acc1\n" + "1,2\n" * 40 + "inf,2\n")
    assert str(root / "classes" / "a" / "inf.csv") in _error(root)

    root = _make_folder(tmp_path / "badlist")
    (root / "annotations").mkdir()
    (root / "annotations" / "train_list.txt").write_text("a/missing.csv\n")
    msg = _error(root)
    assert "a/missing.csv" in msg and str(root) in msg
