#!/usr/bin/env bash
# Creates .venv and installs alchemist_magics (editable) with its test extras; the install builds
# the JupyterLab extension (src/, needs node) and enables it. As root with apt, it also installs
# Debian's Chromium for the browser test (never a browser downloaded by Playwright).
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
command -v node >/dev/null || { echo "setup: node is needed to build the JupyterLab extension (apt-get install nodejs)" >&2; exit 1; }
# (pip's notes about the machine's optional local indexes are noise: filter them, keep errors)
.venv/bin/pip install -q -e ".[dev]" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
.venv/bin/jupyter labextension list 2>&1 | grep -q "alchemist_magics.*enabled" \
  || { echo "setup: the alchemist_magics JupyterLab extension is not enabled" >&2; exit 1; }
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } >/dev/null 2>&1 \
    || echo "setup: could not install chromium; tests/browser will be skipped" >&2
fi
