#!/usr/bin/env bash
# ./run.sh config.yaml [--resume RUN_FOLDER]  — run one config end to end.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: ./run.sh config.yaml [--resume RUN_FOLDER]" >&2
  exit 2
fi
exec python3 -m modelmaker.cli run "$@"
