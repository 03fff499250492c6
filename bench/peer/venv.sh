#!/usr/bin/env bash
# Prints the Python of the peer's venv (target/peer-venv), making it first if
# it lacks what bench/peer/requirements.txt pins. Used by bench/scale.sh and
# bench/nightly.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=$ROOT/target/peer-venv
if ! "$VENV/bin/python" -c 'import duckdb, yaml, openpyxl' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/bench/peer/requirements.txt" >&2
fi
echo "$VENV/bin/python"
