"""Test-session settings: XLA's cheap compilation (tests run tiny networks, so compiling dominates their time), and
the checkout's own compilation cache, .jax-test-cache/ (no user's cache read or filled), which every program is
written to and which is kept between sessions: a second `pytest -m "not slow"` loads what the first compiled (JAX
keys each program by its HLO, options and versions, so a changed program is compiled again).

Set in the environment, so that the `wsrl` processes the tests start (resume, compare) compile the same way and
share the cache: a killed run's resumption loads what its first process compiled. The cache is bounded, which
also makes JAX read and write it under a file lock: the xdist workers and their processes share it safely.
"""

import gc
import os
from pathlib import Path

os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
os.environ["JAX_COMPILATION_CACHE_DIR"] = str(Path(__file__).resolve().parent.parent / ".jax-test-cache")
os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(1 << 30)
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def optimised_xla():
    """XLA's full optimisation, for a test that runs thousands of updates (compiling is then the smaller cost)."""
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Empty JAX's in-memory caches after each test module. Module-level jitted functions (the loops' device calls,
    the updates) keep every program they compiled, one per config and shape, and each XLA:CPU executable holds about
    three memory maps of the process: one process running the whole suite reached the kernel's limit
    (vm.max_map_count, 65530) and XLA then crashed with a segmentation fault while compiling (issue 35). The
    persistent compilation cache makes recompiling a program a later module needs again cheap."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    """A Minari root of the test's own (MINARI_DATASETS_PATH), not created until something writes to it."""
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root
