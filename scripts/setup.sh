#!/usr/bin/env bash
# Creates .venv and installs alchemist_magics (editable) with its test extras.
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# (pip's notes about the machine's optional local indexes are noise: filter them, keep errors)
.venv/bin/pip install -q -e ".[dev]" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
