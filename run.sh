#!/usr/bin/env bash
# ./run.sh config.yaml [--resume RUN_FOLDER]  — run one config end to end.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: ./run.sh config.yaml [--resume RUN_FOLDER]" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
# Use the project's virtual environment when it exists, so ./run.sh works without activating it.
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$here/.venv/bin/python" ]; then
  py="$here/.venv/bin/python"
else
  py="python3"
fi
exec "$py" -m modelmaker.cli run "$@"
