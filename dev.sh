#!/usr/bin/env bash
# Set-up and entry points for a fresh machine with Python >= 3.11:
#   bash dev.sh demo   create .venv, install wsrl, run the end-to-end demo
#   bash dev.sh test   create .venv, install wsrl with test tools, run the test suite
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}

setup() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "dev.sh: error: needs Python >= 3.11 as '$PYTHON' (set PYTHON=/path/to/python3.11)" >&2
    exit 2
  fi
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  local stamp=.venv/.wsrl-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    # uv installs the dependencies in ~10 s where pip takes ~1 min; pip is the fallback.
    if ! { .venv/bin/python -m pip install --quiet uv &&
           .venv/bin/uv pip install --quiet --python .venv/bin/python -e ".[dev]"; }; then
      .venv/bin/python -m pip install --quiet -e ".[dev]"
    fi
    touch "$stamp"
  fi
}

case "${1:-}" in
  demo)
    setup
    shift
    .venv/bin/wsrl demo "$@"
    ;;
  test)
    setup
    shift
    # Two pytest-xdist workers, each taking whole test files (a file's module fixtures are built once): the files
    # that run `wsrl` processes mostly wait on them, so the two overlap well on 2 cores. Plain `python -m pytest` runs
    # the same suite in one process.
    exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
    ;;
  *)
    echo "usage: bash dev.sh demo|test" >&2
    exit 2
    ;;
esac
