#!/usr/bin/env bash
# Make the separate virtualenv that holds NAM's own trainer (neural-amp-modeler 0.13.0) for bench/bench_vs_nam.py.
# It is a bench tool only: never a dependency of tinyverse/modelmaker (pyproject.toml does not name it).
#
#   bash bench/nam_venv.sh                 # creates bench/.venv-nam (git-ignored); reruns are no-ops
#   NAM_VENV=/elsewhere bash bench/nam_venv.sh
#
# torch stays at the project's 2.13.0: the install runs with a constraints file pinning it (plus the machine's
# /etc/xdg/pip/constraints.txt when pip is configured with it), so pip can neither up- nor downgrade torch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${NAM_VENV:-$here/.venv-nam}"
python="${PYTHON:-python3}"
nam_version="0.13.0"
torch_version="2.13.0"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$nam_version" "$torch_version" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
assert version("neural-amp-modeler") == sys.argv[1], "nam"
assert version("torch").split("+")[0] == sys.argv[2], "torch"
PY
then
    echo "$venv: neural-amp-modeler $nam_version with torch $torch_version already installed"
    exit 0
fi

"$python" -m venv "$venv"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
# A local (+cpu) build satisfies "torch==2.13.0"; the CPU wheel avoids pulling CUDA libraries.
echo "torch==$torch_version" > "$constraints"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --constraint "$constraints" "torch==$torch_version" \
    "neural-amp-modeler==$nam_version"
"$venv/bin/python" - <<'PY'
from importlib.metadata import version
import torch
print(f"neural-amp-modeler {version('neural-amp-modeler')}, torch {torch.__version__}")
PY
