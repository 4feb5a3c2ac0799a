"""Arm Ethos-U: run the `vela` compiler on an int8 .tflite and read back NPU placement and cycle estimates."""
from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tinyverse.devices.profile import DeviceProfile


def vela_command() -> str | None:
    """The vela executable: on PATH, or beside this interpreter (a virtual environment used without activating it,
    e.g. ``.venv/bin/modelmaker``, has its console scripts there but not on PATH)."""
    found = shutil.which("vela")
    if found:
        return found
    beside = Path(sys.executable).with_name("vela")
    return str(beside) if beside.is_file() else None


def vela_available() -> bool:
    return vela_command() is not None


def run_vela(tflite_path: str | Path, profile: DeviceProfile, out_dir: str | Path | None = None,
             timeout_s: int = 300) -> dict[str, Any]:
    """Compile with vela; returns npu/cpu operator counts, CPU-fallback lines, cycles and SRAM/flash use.

    When vela is not installed the result says so (``{"available": False, "message": ...}``) instead of failing.
    """
    if not vela_available():
        return {"available": False, "message": "vela is not installed (pip install ethos-u-vela); "
                                               "Ethos-U placement and cycles were not computed"}
    cfg = profile.compiler or {}
    with tempfile.TemporaryDirectory(prefix="tinyverse_vela_") as tmp:
        out = Path(out_dir) if out_dir else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        cmd = [vela_command(), str(tflite_path), "--output-dir", str(out), "--show-cpu-operations",
               "--accelerator-config", cfg.get("accelerator_config", "ethos-u55-128")]
        for key, flag in (("system_config", "--system-config"), ("memory_mode", "--memory-mode")):
            if cfg.get(key):
                cmd += [flag, str(cfg[key])]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"available": True, "ok": False, "message": f"vela timed out after {timeout_s} s"}
        text = proc.stdout + proc.stderr
        if proc.returncode != 0:
            return {"available": True, "ok": False, "message": "vela failed: " + " | ".join(text.strip().splitlines()[-3:])}
        res: dict[str, Any] = {"available": True, "ok": True}
        for key, pat in (("npu_operators", r"NPU operators = (\d+)"), ("cpu_operators", r"CPU operators = (\d+)")):
            m = re.search(pat, text)
            res[key] = int(m.group(1)) if m else None
        res["cpu_fallback"] = [line.strip() for line in text.splitlines()
                               if "CPU" in line and ("not supported" in line or "placed on" in line.lower())]
        summary = next(out.glob("*_summary_*.csv"), None)
        if summary is not None:
            row = next(csv.DictReader(summary.open()), {})
            for key in ("cycles_total", "cycles_npu", "inference_time", "sram_memory_used",
                        "off_chip_flash_memory_used"):
                if key in row:
                    res[key] = float(row[key])
        return res
