"""Test-session settings: XLA's cheap compilation (tests run tiny networks, so compiling dominates their time).

Set in the environment, so that the `wsrl` processes the tests start (resume, compare) compile the same way.
"""

import os

os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
