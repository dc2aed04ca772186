"""Presets: the paper's numbers per benchmark family (METHOD.md §3), as complete online run configs."""

from __future__ import annotations

from collections.abc import Callable

from wsrl.errors import UserError
from wsrl.presets import locomotion
from wsrl.train.online import OnlineConfig

PRESETS: dict[str, Callable[[], OnlineConfig]] = {
    "locomotion": locomotion.online,
}
DEFAULT_PRESET = "locomotion"


def get_preset(name: str) -> OnlineConfig:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()
