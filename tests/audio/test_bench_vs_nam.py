"""The bench against NAM's trainer (bench/captures.py, bench/bench_vs_nam.py): captures are seeded, cached and read
by our dataset; both trainers get the same split; NAM's training config is the preset NAM's trainer writes.
Training itself is not run here (NAM's trainer lives in a separate venv; bench/README.md has the smoke run)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from bench.bench_vs_nam import (PRE_SILENCE_SECONDS, bench_split, nam_data_config, nam_learning_config,
                                nam_model_config, ours_config, summary)
from bench.captures import make_capture
from modelmaker.config.load import parse_overrides
from modelmaker.runner import load_run_config
from tinyverse.audio.dataset import NamCaptureDataset

ROOT = Path(__file__).resolve().parents[2]
NAM013_NANO = ROOT.parent / "shared" / "fixtures" / "nam_a2" / "nam013_a1_nano.nam"


def test_a_capture_is_seeded_cached_and_read_by_our_dataset(tmp_path):
    c = make_capture("overdrive", seconds=8, seed=0, root=tmp_path / "a")
    assert not c["cached"] and make_capture("overdrive", seconds=8, seed=0, root=tmp_path / "a")["cached"]
    again = make_capture("overdrive", seconds=8, seed=0, root=tmp_path / "b")
    other = make_capture("overdrive", seconds=8, seed=1, root=tmp_path / "c")
    assert again["samples_sha256"] == c["samples_sha256"] != other["samples_sha256"]
    # The recipe's 12-sample interface latency, less NAM's safety sample, found from the blips.
    assert c["latency"]["recommended"] == 11 and c["latency"]["delays"] == [12, 12]
    assert c["repeatability_esr"] < 1e-4
    y, sr = sf.read(c["output_path"], dtype="float32")
    assert sr == 48_000 and abs(20 * np.log10(np.max(np.abs(y))) - (-3.0)) < 0.1
    data = NamCaptureDataset(input_path=c["input_path"], output_path=c["output_path"]).load()
    assert data.info["layout"] == "sidecar input.layout.json" and data.latency.delay == 11
    sidecar = Path(c["folder"]) / "capture.json"
    assert json.loads(sidecar.read_text())["params"]["recipe"]["name"] == "overdrive"
    # A latency cached by an older calibration is found again from the cached output, and the sidecar is fixed.
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "latency": {"recommended": 14, "delays": [15, 15], "warnings": []}}))
    again = make_capture("overdrive", seconds=8, seed=0, root=tmp_path / "a")
    assert again["cached"] and again["latency"] == c["latency"] == json.loads(sidecar.read_text())["latency"]


def test_both_trainers_get_the_same_split(tmp_path):
    c = make_capture("comp_eq", seconds=8, seed=0, root=tmp_path / "caps")
    x, sr = sf.read(c["input_path"], dtype="float32")
    split = bench_split(c, x)
    (_, a1), (b0, b1) = c["layout"]["validation"]
    assert split == {"train": [a1 + int(PRE_SILENCE_SECONDS * sr), b0], "validation": [b0, b1]}
    latency = c["latency"]["recommended"]

    nam = nam_data_config(c, split, latency)
    assert (nam["train"]["start_samples"], nam["train"]["stop_samples"]) == tuple(split["train"])
    # The validation block ends the file: "to the end" on both sides (our range is cut by the latency shift).
    assert nam["validation"]["start_samples"] == b0 and nam["validation"]["stop_samples"] is None
    assert nam["common"]["delay"] == latency and nam["common"]["x_path"] == c["input_path"]
    assert nam_learning_config(3)["trainer"]["max_epochs"] == 3

    cfg = ours_config(ROOT / "configs" / "audio_amp_capture.yaml", c, split, latency, "NAM_WaveNet_nano", 3,
                      tmp_path / "projects", "run", 0)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    loaded = load_run_config(path)
    assert loaded.training.epochs == 3 and loaded.dataset.params["latency"] == latency
    data = NamCaptureDataset(**loaded.dataset.params).load()
    assert data.layout.train == split["train"] and data.layout.validation[-1][0] == b0
    assert data.info["split"]["excluded_from_training_seconds"] == 0.0
    # --ours-set: an experiment changes our recipe, nothing else (the split and the files stay the bench's).
    variant = ours_config(ROOT / "configs" / "audio_amp_capture.yaml", c, split, latency, "NAM_WaveNet_nano", 3,
                          tmp_path / "projects", "run", 0,
                          overrides=parse_overrides(["training.lr_scheduler=cosine", "training.batch_size=8"]))
    assert (variant["training"]["lr_scheduler"], variant["training"]["batch_size"]) == ("cosine", 8)
    assert variant["dataset"] == cfg["dataset"] and variant["training"]["epochs"] == 3

    x[a1 + 10] = 0.1  # sound where NAM requires silence before the training range: refused, not trained
    with pytest.raises(ValueError, match="not silent"):
        bench_split(c, x)


@pytest.mark.parametrize("preset", ["nano"])
def test_nam_training_config_is_the_preset_nams_trainer_writes(preset):
    written = json.loads(NAM013_NANO.read_text())["config"]
    ours = nam_model_config(preset)["net"]["config"]
    assert ours["head_scale"] == written["head_scale"]
    assert len(ours["layers_configs"]) == len(written["layers"])
    for mine, theirs in zip(ours["layers_configs"], written["layers"]):
        n = len(theirs["dilations"])
        assert mine["dilations"] == theirs["dilations"] and [mine["kernel_sizes"]] * n == theirs["kernel_sizes"]
        assert (mine["input_size"], mine["condition_size"], mine["channels"]) == \
            (theirs["input_size"], theirs["condition_size"], theirs["channels"])
        assert mine["head"] == theirs["head"]
        assert [{"type": mine["activation"]}] * n == theirs["activation"] and not mine["gated"]


def test_the_summary_pairs_an_ours_only_rerun_with_the_stored_nam_run(tmp_path):
    def row(seed, ours=None, nam=None):
        r = {"capture": "comp_eq", "preset": "nano", "epochs": 20, "train_seed": seed}
        if ours is not None:
            r["ours"] = {"esr": ours, "fit_s": 50.0}
        if nam is not None:
            r["nam"] = {"esr": nam, "fit_s": 100.0}
        return r

    both = tmp_path / "both.json"
    both.write_text(json.dumps({"rows": [row(0, 0.5, 0.2), row(1, 0.5, 0.3)]}))
    rerun = tmp_path / "ours_only.json"  # the recipe changed: ours again, seeds 0 and 2 (seed 2 has no NAM run)
    rerun.write_text(json.dumps({"rows": [row(0, ours=0.1), row(2, ours=0.1)]}))
    line = next(x for x in summary([str(both), str(rerun)]).splitlines() if x.startswith("| comp_eq"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # seed 0: the re-run's 0.1 against NAM's 0.2; seed 1: the stored pair; seed 2: unpaired, left out.
    assert cells[2:] == ["2", "0.1000 / 0.5000", "0.2000 / 0.3000", "0.3000", "0.2500", "1/2", "0.50"]
