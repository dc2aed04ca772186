"""How a command's flags become its config, shared by the CLI, `wsrl sweep` (which checks every trial before it runs)
and the Python API: the preset (and `--algo` for pretrain) gives the paper's numbers, the method transforms them,
and single fields are overridden; a field that belongs to a part the chosen method or algorithm does not use is
refused with its reason. tyro parses the flags, a usage error becoming one line (`parse`).

Imports nothing heavy (the CLI's `--help` stays fast).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal
from unittest import mock

import tyro

from wsrl.config import (
    NETWORK_FIELDS,
    ContinuedConfig,
    CQLConfig,
    IQLConfig,
    JSRLConfig,
    OfflineConfig,
    OnlineConfig,
    RetentionConfig,
    SACConfig,
    class_flags,
    flag_name,
    flag_values,
    positive_flag,
)
from wsrl.errors import UserError
from wsrl.presets import DEFAULT_PRESET, PRESETS, offline_preset, online_preset
from wsrl.presets.methods import METHODS, method

COMMANDS = {
    "demo": "the whole method in minutes: random data -> CQL pre-training -> WSRL fine-tuning -> table and plot",
    "collect": "make an offline dataset in the Minari format (recipes: random, policy, sac-ladder, waypoint)",
    "pretrain": "pre-train Cal-QL, CQL or IQL on an offline dataset (Minari id/directory or D4RL hdf5)",
    "finetune": "fine-tune a checkpoint online with WSRL: warmup with the frozen policy, then ensemble SAC",
    "train": "train from scratch: the WSRL online learner without data (SAC fast), or RLPD with --method rlpd",
    "resume": "continue an interrupted pretrain / train / finetune run from its newest checkpoint (--steps: extend)",
    "eval": "evaluate a checkpoint's deterministic policy",
    "export": "write a run's policy as a numpy-only file for robots (`wsrl.deploy.NumpyPolicy.load`)",
    "compare": "pre-train once, run several methods x seeds, write results.csv, a table and comparison.png",
    "sweep": "search flags of pretrain / train / finetune with Ray Tune (grid, random, ASHA): table and plot",
    "plot": "learning curves of run directories (mean and 95% bootstrap band over seeds) into a PNG",
    "data": "`wsrl data info DATASET`: episodes, transitions, returns, normalised-score range, spaces; "
            "`wsrl data download ID`: fetch a Minari dataset",
}
PresetName = Literal[tuple(sorted(PRESETS))]  # type: ignore[valid-type]
PRESET_HELP = "hyperparameter preset of a benchmark family; other flags override it"


# --- tyro, with the one-line error contract -----------------------------------------------------------------


def one_line(report: str) -> str:
    """The message of tyro's boxed error report (box drawn in unicode on a terminal, in ASCII otherwise)."""
    lines = [line.strip().strip("│╭╮╰╯|+").strip() for line in report.splitlines()]
    lines = [line.strip("─ ") for line in lines if line.strip("─- ") and not line.startswith("For full helptext")]
    if len(lines) < 2:  # [title, message, details...]
        return lines[0] if lines else "invalid arguments"
    if lines[1].endswith(":"):  # "Missing from wsrl plot:" followed by the flags, one per line
        return f"{lines[1]} {', '.join(line for line in lines[2:] if line.startswith('-'))}"
    if "Perhaps you meant:" in lines:  # tyro's suggestions for a misspelled flag, one per line
        guesses = [line.split()[0] for line in lines[lines.index("Perhaps you meant:") + 1:] if line.startswith("--")]
        return f"{lines[1]}; perhaps you meant {' or '.join(dict.fromkeys(guesses))}" if guesses else lines[1]
    return lines[1]


def parse(cls: type, args: Sequence[str], prog: str, default: Any = None, unknown: bool = False) -> Any:
    """tyro.cli over `cls`: help exits 0; a usage error becomes a UserError (one line, exit 2)."""
    report = io.StringIO()
    wide = {} if {"-h", "--help"} & set(args) else {"COLUMNS": "1000"}  # tyro's error box must not wrap its message
    try:
        with contextlib.redirect_stderr(report), mock.patch.dict(os.environ, wide):
            return tyro.cli(cls, args=list(args), prog=prog, description=COMMANDS[prog.split()[1]],
                            default=default, return_unknown_args=unknown,
                            config=(tyro.conf.OmitArgPrefixes, tyro.conf.AvoidSubcommands))
    except SystemExit as e:
        if e.code in (0, None):
            raise
        raise UserError(f"{one_line(report.getvalue())} (see `{prog} --help`)") from None


def arg(help: str, **kwargs: Any) -> Any:
    return tyro.conf.arg(help=help, **kwargs)


def _run_command(command: str, known: argparse.Namespace, base: Any) -> type:
    """The dataclass of a training command's flags: its own options, then every config field."""
    fields: list[tuple[str, Any, Any]] = []
    if command == "finetune":
        fields.append(("from_path", Annotated[str, arg("run directory or checkpoint directory to start from",
                                                      name="from")], field(default=known.from_path or "")))
    if command in ("train", "finetune"):
        names = tuple(n for n, m in METHODS.items() if m.from_checkpoint == (command == "finetune"))
        about = "; ".join(f"{n}: {METHODS[n].about}" for n in names)
        fields.append(("method", Annotated[Literal[names], arg(about)], field(default=known.method)))
    fields += [
        ("preset", Annotated[PresetName, arg(PRESET_HELP)], field(default=known.preset)),
        ("out", Annotated[str | None, arg("run directory to write (None: runs/COMMAND_NAME_SEED_TIME)")],
         field(default=None)),
        ("overwrite", Annotated[bool, arg("replace --out if it already holds a run")], field(default=False)),
        *([("download", Annotated[bool, arg("fetch --dataset (a Minari id) from Minari's remote first, unless it "
                                            "is already in the Minari root")], field(default=False))]
          if command == "pretrain" else []),
        ("seeds", Annotated[int, arg("seeds run together in this process (--seed, --seed + 1, ...), each into "
                                      "OUT/seedS/" + (" from FROM/seedS/ when --from is a run of as many seeds"
                                                      if command == "finetune" else ""))], field(default=1)),
        ("config", type(base), field(default=base)),
    ]
    return dataclasses.make_dataclass(f"{command.capitalize()}Command", fields, frozen=True)


def resolve(command: str, args: Sequence[str], checkpoint_env: bool = True) -> Any:
    """The parsed flags of `wsrl pretrain|train|finetune ARGS` (`.config`: the run's config); a UserError for bad
    input. `checkpoint_env=False` skips reading finetune's --from (which may not exist yet) for its default env."""
    known, config = base(command, args)
    if command == "finetune" and not known.from_path and not {"-h", "--help"} & set(args):
        raise UserError("--from RUN_OR_CHECKPOINT is required: the pre-trained run to fine-tune")
    refuse_inapplicable(command, args, known, config)
    if command == "finetune" and known.from_path and checkpoint_env:
        config = env_of_checkpoint(config, known.from_path)
    parsed = parse(_run_command(command, known, config), args, f"wsrl {command}")
    if command == "finetune" and known.from_path and checkpoint_env:
        flags = {arg.split("=")[0] for arg in args}
        given = {f.name for f in dataclasses.fields(parsed.config.agent) if flag_name(f.name) in flags}
        preset = known.preset if "--preset" in flags else None
        parsed = dataclasses.replace(parsed, config=network_of_checkpoint(parsed.config, known.from_path, given,
                                                                          preset))
    return parsed


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


def _checkpoint_meta(from_path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint finetune starts from (of a multi-seed run: its first seed's) and its meta.json."""
    from wsrl import checkpoint, rundir

    directory = checkpoint.resolve(rundir.members(Path(from_path))[0])
    return directory, checkpoint.load_meta(directory)


def env_of_checkpoint(base: OnlineConfig, from_path: str) -> OnlineConfig:
    """finetune's default env: the one the checkpoint was trained for."""
    trained_for = _checkpoint_meta(from_path)[1].get("env")
    return dataclasses.replace(base, env=trained_for or base.env)


def network_of_checkpoint(config: OnlineConfig, from_path: str | Path, given: set[str],
                          preset: str | None) -> OnlineConfig:
    """finetune's SAC learner shaped as the checkpoint's networks: each of `config.NETWORK_FIELDS` is the
    checkpoint's unless the caller set it (`given`, field names) or chose a preset (`preset`, None when left out),
    and a value so set that contradicts the checkpoint is refused with the reason. Continued learners restore their
    own config whole, so they are left as they are."""
    if config.continued is not None:
        return config
    from wsrl import checkpoint

    directory, meta = _checkpoint_meta(from_path)
    recorded = checkpoint.agent_config(meta)
    changes = {}
    for name in NETWORK_FIELDS:
        if not hasattr(recorded, name):  # IQL's config: refused as a seed of the SAC learner when the run starts
            continue
        value, current = getattr(recorded, name), getattr(config.agent, name)
        if value == current:
            continue
        if name in given:
            raise UserError(f"{flag_name(name)} {_shown(current)} contradicts checkpoint {directory}, whose networks "
                            f"have {_shown(value)}; drop it (fine-tuning keeps the pre-trained networks)")
        if preset is not None:
            raise UserError(f"--preset {preset} sets {flag_name(name)} {_shown(current)}, but checkpoint {directory} "
                            f"has {_shown(value)}; give the preset it was pre-trained with, or leave --preset out")
        changes[name] = value
    return dataclasses.replace(config, agent=dataclasses.replace(config.agent, **changes)) if changes else config


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


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
