#!/usr/bin/env bash
# Regenerate requirements.lock, the exact versions (with the SHA-256 of every file PyPI serves
# for them) of Herald's runtime dependencies ([project.dependencies] of pyproject.toml) and of
# its build backend ([build-system] requires), for Python 3.11 on Linux as in the image.
# The Dockerfile installs from it with `pip install --require-hashes`, so two image builds a
# month apart install the same code; `make test` (scripts/bootstrap.sh) takes it as constraints.
#
# Run it after changing a dependency in pyproject.toml (tests/unit/test_lock_file.py fails until
# then), or to take newer releases on purpose (`scripts/lock.sh --upgrade`), and commit the
# result. The tool is pip-tools' pip-compile, pinned below, in a throw-away virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
PIP_TOOLS="pip-tools==7.6.2"

# Resolve against the public index alone: no machine-wide pip configuration (extra indexes,
# find-links, constraints) may leak into what the image installs.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT PIP_NO_INDEX
tool="$(mktemp -d)"
trap 'rm -rf "$tool"' EXIT
"$PYTHON" -m venv "$tool/venv"
"$tool/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$PIP_TOOLS"
# --allow-unsafe: setuptools (the build backend) is pinned too. --strip-extras: a constraints
# file may not name extras. CUSTOM_COMPILE_COMMAND: the header names this script.
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$tool/venv/bin/pip-compile" \
  --quiet \
  --generate-hashes \
  --allow-unsafe \
  --strip-extras \
  --build-deps-for=wheel \
  --no-emit-index-url \
  --no-emit-find-links \
  --output-file=requirements.lock \
  "$@" \
  pyproject.toml
