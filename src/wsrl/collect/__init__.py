"""Dataset making: recipes that roll out or train policies and write Minari datasets, and suites of them."""

from wsrl.collect.recipes import collect
from wsrl.collect.suites import collect_suite

__all__ = ["collect", "collect_suite"]
