#!/usr/bin/env bash
# Builds .venv, the Python environment of the real clients that the test suite runs
# against Cria's files (pandas, TensorBoard, nbformat, Jupyter). Reused while
# scripts/requirements-ci.txt is unchanged; prints the interpreter's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=scripts/requirements-ci.txt
stamp="$venv/.requirements.sha256"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "python-env: building $venv from $requirements" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "python-env: error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$wanted" > "$stamp"
fi
echo "$PWD/$venv/bin/python"
