#!/usr/bin/env bash
# Create .venv and install Herald with its dev tools; re-install when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.herald-installed"
wanted="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # Runtime dependencies at the image's versions: requirements.lock as constraints, without its
  # hashes (pip would take hashed constraints as --require-hashes for the dev tools too).
  sed -e '/--hash=/d' -e 's/ *\\$//' requirements.lock > .venv/constraints.txt
  .venv/bin/python -m pip install --quiet -e ".[dev]" -c .venv/constraints.txt
  echo "$wanted" > "$stamp"
fi
