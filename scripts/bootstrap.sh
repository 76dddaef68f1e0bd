#!/usr/bin/env bash
# Create .venv and install Herald into it; re-install when pyproject.toml or requirements.lock
# changes. The runtime dependencies are installed at the image's versions: requirements.lock as
# constraints, without its hashes (pip would take hashed constraints as --require-hashes for the
# dev tools too).
#   scripts/bootstrap.sh runtime   Herald and its runtime dependencies only (`make run`)
#   scripts/bootstrap.sh [dev]     the same plus the `dev` extra: test, lint and type tools
#                                  (`make test`, `make lint`; the default)
# Each mode keeps a stamp in .venv holding the hash of the pyproject.toml and lock it installed. A dev
# install contains the runtime one, so `runtime` is satisfied by either stamp, while `dev` after
# a runtime-only install upgrades the same .venv in place.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-dev}"
case "$mode" in
  runtime) spec="." ;;
  dev) spec=".[dev]" ;;
  *) echo "scripts/bootstrap.sh: unknown mode '$mode' (runtime or dev)" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
dev_stamp=".venv/.herald-installed"  # the name older checkouts wrote for their (dev) install
runtime_stamp=".venv/.herald-installed-runtime"
wanted="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
current() { [ -f "$1" ] && [ "$(cat "$1")" = "$wanted" ]; }

if current "$dev_stamp" || { [ "$mode" = runtime ] && current "$runtime_stamp"; }; then
  exit 0
fi
echo "installing Herald ($mode) into .venv" >&2
.venv/bin/python -m pip install --quiet --upgrade pip
sed -e '/--hash=/d' -e 's/ *\\$//' requirements.lock > .venv/constraints.txt
.venv/bin/python -m pip install --quiet -e "$spec" -c .venv/constraints.txt
if [ "$mode" = dev ]; then
  echo "$wanted" > "$dev_stamp"
else
  echo "$wanted" > "$runtime_stamp"
fi
