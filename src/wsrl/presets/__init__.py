"""Presets: the paper's numbers per benchmark family (docs/method.md §3-4), for pre-training and for WSRL online.

Each family module (and each reduced budget in `cpu.py`) defines `DEFAULT_ALGO`, `offline()` (an OfflineConfig)
and `online()` (an OnlineConfig) with the same network shapes, so that a checkpoint pre-trained with a preset
loads into `wsrl finetune` with that preset.
"""

from __future__ import annotations

from types import ModuleType

from wsrl.config import OfflineConfig, OnlineConfig
from wsrl.errors import UserError
from wsrl.presets import adroit, antmaze, demo, kitchen, locomotion
from wsrl.presets.cpu import Reduced, cpu, cpu_maze

PRESETS: dict[str, ModuleType | Reduced] = {
    "antmaze": antmaze, "kitchen": kitchen, "adroit": adroit, "locomotion": locomotion, "demo": demo,
    "cpu": cpu, "cpu-maze": cpu_maze}
DEFAULT_PRESET = "locomotion"


def _family(name: str) -> ModuleType | Reduced:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def online_preset(name: str) -> OnlineConfig:
    return _family(name).online()


def offline_preset(name: str, algo: str | None = None) -> OfflineConfig:
    """The family's pre-training config for `algo` (default: the paper's algorithm for that family)."""
    family = _family(name)
    if algo not in (None, "calql", "cql", "iql"):
        raise UserError(f"unknown --algo {algo!r}; choose calql, cql or iql")
    return family.offline(algo or family.DEFAULT_ALGO)
