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
    # The tests that run `wsrl` processes (resume, stop, compare, sweep: the two Ray ones one after the other, two
    # Ray clusters at once slowed both) and the multi-seed ones in a pytest process of their own beside the others
    # (about half the time each): the first mostly wait on those processes, and one long session compiling every
    # test's programs crashed jax 0.10.2 on CPU.
    beside=(tests/test_resume.py tests/test_stop.py tests/test_compare.py tests/test_sweep.py tests/test_seeds.py)
    log=$(mktemp)
    .venv/bin/python -m pytest "${beside[@]}" "$@" >"$log" 2>&1 &
    beside_pid=$!
    status=0
    .venv/bin/python -m pytest tests "${beside[@]/#/--deselect=}" "$@" || status=$?
    wait "$beside_pid" || status=$((status ? status : $?))
    echo "--- ${beside[*]} ---"
    cat "$log"
    rm -f "$log"
    exit "$status"
    ;;
  *)
    echo "usage: bash dev.sh demo|test" >&2
    exit 2
    ;;
esac
