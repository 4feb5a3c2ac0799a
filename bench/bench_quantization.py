"""Float vs int8 over several seeds of one config (not a test; run by hand).

    python bench/bench_quantization.py                                   # the default config, seeds 42 1 2 3
    python bench/bench_quantization.py configs/timeseries_classification_cortex_m4.yaml --seeds 0 1 2 3 4

One test split is small (GunPoint: 150 series, so one flipped series is 0.67 points): a single run says little
about what int8 costs. Each seed is a full run of the config (training, PTQ, TFLM); the table prints, per seed,
the float and the int8-in-TFLM metric, how many test samples changed their argmax between them, and how close
the flipped samples were in float (softmax probability of the float winner), then the mean drop.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?", default=str(ROOT / "configs" / "timeseries_classification.yaml"))
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2, 3])
    ap.add_argument("--out", default=None, help="projects folder (default: a temporary one)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    from modelmaker import runner
    from tinyverse.export.tflite import run_tflm

    out = Path(args.out or tempfile.mkdtemp(prefix="bench_quant_"))
    print(f"{'seed':>6} | {'float':>7} | {'int8 TFLM':>9} | {'drop (pts)':>10} | {'flips':>5} | "
          f"{'float p(win) of flips':<22} | {'wall (s)':>8}")
    drops = []
    for seed in args.seeds:
        summary = runner.run(args.config, overrides={"common": {"projects_path": str(out), "verbose": False,
                                                                "seed": seed, "run_name": f"seed{seed}"}})
        rows = {r["artifact"]: r for r in summary["compilation"]["verification"]}
        f, q = rows["PyTorch float"]["metric"], rows["TFLite int8 (TFLM)"]["metric"]
        run_dir = Path(summary["run_dir"])
        # Which samples flipped, and how sure the float model was about them.
        import torch

        from tinyverse.export import torch_outputs
        from tinyverse.models import GenericModelWithSpec
        from tinyverse.models.spec import ModelSpec

        model = GenericModelWithSpec(ModelSpec.from_yaml(run_dir / "model_spec.yaml"))
        state = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
        model.load_state_dict({k[6:]: v for k, v in state["state_dict"].items() if k.startswith("model.")})
        data = runner.load_run_config(args.config, {"common": {"seed": seed}})
        module_data = runner.AI_MODULES.get(data.common.modality)().load_data(data)
        X = np.ascontiguousarray(module_data.X_test[..., None], dtype=np.float32)
        ref = torch_outputs(model.eval(), X)
        y8, _ = run_tflm(run_dir / "model_int8.tflite", X)
        y8 = y8.reshape(ref.shape)
        flips = np.where(y8.argmax(1) != ref.argmax(1))[0]
        p = np.exp(ref - ref.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        sure = ", ".join(f"{p[i].max():.2f}" for i in flips) or "-"
        drop = 100 * (f - q)
        drops.append(drop)
        print(f"{seed:>6} | {100 * f:>6.2f}% | {100 * q:>8.2f}% | {drop:>10.2f} | {len(flips):>5} | {sure:<22} | "
              f"{summary['wall_time_s']:>8.1f}")
    print(f"mean drop {np.mean(drops):.2f} points over {len(drops)} seeds; worst {max(drops):.2f}; runs in {out}")
    print(json.dumps({"seeds": args.seeds, "drops": drops}))


if __name__ == "__main__":
    main()
