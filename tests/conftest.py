"""Test-session settings: XLA's cheap compilation (tests run tiny networks, so compiling dominates their time).

Set in the environment, so that the `wsrl` processes the tests start (resume, compare) compile the same way.
"""

import os

os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def optimised_xla():
    """XLA's full optimisation, for a test that runs thousands of updates (compiling is then the smaller cost)."""
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", True)
