"""A run's life: when it checkpoints, and how it ends early and cleanly (docs/architecture.md §4).

SIGINT / SIGTERM stop it after a checkpoint; a non-finite value stops it as diverged, without overwriting the last
good checkpoint.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

from wsrl.errors import Diverged


@dataclass
class CheckpointClock:
    """Checkpoints every `every` steps (0: never by count) and whenever `minutes` passed since the last one."""

    every: int
    minutes: float
    last: float = field(default_factory=time.monotonic)

    def due(self, step: int) -> bool:
        by_count = bool(self.every) and step % self.every == 0
        return by_count or bool(self.minutes) and time.monotonic() - self.last >= 60.0 * self.minutes

    def saved(self) -> None:
        self.last = time.monotonic()


@dataclass
class StopRequest:
    signal: int | None = None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """While inside, SIGINT and SIGTERM only set the request; the loop checkpoints and raises `Stopped`."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: Any) -> None:
        request.signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def check_metrics(step: int, metrics: dict[str, float], where: str = "") -> None:
    """Stop as diverged on the first non-finite metric (`where`: e.g. "seed 3's ", of a multi-seed run)."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise Diverged(step, where + name)


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
                                if jnp.issubdtype(x.dtype, jnp.floating)]))


def check_parameters(step: int, agent: Any, where: str = "") -> None:
    if not bool(_all_finite(agent)):
        raise Diverged(step, where + "a network parameter")
