"""How a training command's config is chosen, shared by the CLI and the Python API: the preset (and `--algo` for
pretrain) gives the paper's numbers, the method transforms them, and single fields are overridden; a field that
belongs to a part the chosen method or algorithm does not use is refused with its reason.

Imports nothing heavy (the CLI's `--help` stays fast).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wsrl.config import (
    ContinuedConfig,
    CQLConfig,
    IQLConfig,
    JSRLConfig,
    OfflineConfig,
    OnlineConfig,
    RetentionConfig,
    SACConfig,
    class_flags,
    flag_values,
    positive_flag,
)
from wsrl.errors import UserError
from wsrl.presets import DEFAULT_PRESET, offline_preset, online_preset
from wsrl.presets.methods import METHODS, method


def base(command: str, args: Sequence[str]) -> tuple[argparse.Namespace, OnlineConfig | OfflineConfig]:
    """The options that choose the config (preset, algo, method, checkpoint) and the config they give."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=DEFAULT_PRESET)
    pre.add_argument("--algo", default=None)
    pre.add_argument("--method", default="sac-fast" if command == "train" else "wsrl")
    pre.add_argument("--from", dest="from_path", default=None)
    known = pre.parse_known_args(args)[0]
    if command == "pretrain":
        return known, offline_preset(known.preset, known.algo)
    return known, method(known.method, command).apply(online_preset(known.preset))


def env_of_checkpoint(base: OnlineConfig, from_path: str) -> OnlineConfig:
    """finetune's default env: the one the checkpoint (of a multi-seed run: its first seed's) was trained for."""
    from wsrl import checkpoint
    from wsrl.train import rundir

    trained_for = checkpoint.load_meta(checkpoint.resolve(rundir.members(Path(from_path))[0])).get("env")
    return dataclasses.replace(base, env=trained_for or base.env)


def methods_with(part: Callable[[OnlineConfig], object]) -> str:
    base = online_preset(DEFAULT_PRESET)
    return ", ".join(n for n, m in METHODS.items() if part(m.apply(base)) is not None)


def refusal(flag: str, command: str, known: argparse.Namespace, base: Any) -> str | None:
    """Why `flag` does not apply to this command, method or algorithm (None: it applies, or is unknown)."""
    flag = positive_flag(flag)
    if flag in flag_values(base):
        return None
    if command == "pretrain":
        if flag == "--calql":
            return f"--calql is not a flag: Cal-QL is chosen with --algo calql (this run: --algo {base.algo})"
        if base.algo == "iql" and flag in class_flags(CQLConfig):
            return f"{flag} is a setting of CQL and Cal-QL, not of --algo iql"
        if flag in class_flags(IQLConfig):
            return f"{flag} is a setting of IQL, not of --algo {base.algo}"
        return None
    name = known.method
    if flag == "--algo":
        return (f"--algo chooses the pre-training algorithm of `wsrl pretrain`; online, --method {name} chooses "
                "the learner")
    if flag in class_flags(SACConfig):
        hint = " (critic steps per env step: --continued-utd)" if flag == "--utd" else ""
        return (f"{flag} sets the ensemble SAC learner, which --method {name} does not use: it continues the "
                f"checkpoint's own {base.agent.algo} learner with its pre-training hyperparameters{hint}")
    if flag in class_flags(ContinuedConfig):
        return (f"{flag} applies to the offline learners continued online (--method "
                f"{methods_with(lambda c: c.continued)}), not to --method {name}")
    if flag in class_flags(RetentionConfig):
        return (f"{flag} applies to the methods that keep offline data (--method "
                f"{methods_with(lambda c: c.retention)}), not to --method {name}")
    if flag in class_flags(JSRLConfig):
        return f"{flag} applies to --method {methods_with(lambda c: c.jsrl)} only, not to --method {name}"
    if flag == "--from" and command == "train":
        return "--from applies to `wsrl finetune`: `wsrl train` starts from scratch"
    return None


def refuse_inapplicable(command: str, args: Sequence[str], known: argparse.Namespace, base: Any) -> None:
    for token in args:
        if token.startswith("--"):
            reason = refusal(token.split("=")[0], command, known, base)
            if reason:
                raise UserError(reason)
