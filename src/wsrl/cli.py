"""The `wsrl` command line: every flag comes from the config dataclasses and their field docstrings."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from wsrl.config import add_config_arguments, config_from_arguments
from wsrl.errors import UserError
from wsrl.presets import DEFAULT_PRESET, PRESETS, offline_preset, online_preset
from wsrl.train.methods import METHODS, method

COMMANDS = {
    "demo": "the whole method in minutes: random data -> CQL pre-training -> WSRL fine-tuning -> table and plot",
    "collect": "make an offline dataset in the Minari format (recipes: random, policy, sac-ladder, waypoint)",
    "pretrain": "pre-train Cal-QL, CQL or IQL on an offline dataset (Minari id/directory or D4RL hdf5)",
    "finetune": "fine-tune a checkpoint online with WSRL: warmup with the frozen policy, then ensemble SAC",
    "train": "train from scratch: the WSRL online learner without data (SAC fast), or RLPD with --method rlpd",
    "eval": "evaluate a checkpoint's deterministic policy",
    "compare": "pre-train once, run several methods x seeds, write results.csv, a table and comparison.png",
    "plot": "learning curves of run directories (mean and 95% bootstrap band over seeds) into a PNG",
    "data": "`wsrl data info DATASET`: episodes, transitions, returns, normalised-score range, spaces",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag on one line and exits with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _top_help() -> str:
    lines = ["usage: wsrl COMMAND [flags]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    lines += ["", "`wsrl COMMAND --help` lists every flag with its default."]
    return "\n".join(lines)


def _run_parser(command: str, args: Sequence[str]) -> tuple[_Parser, object]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=DEFAULT_PRESET)
    pre.add_argument("--algo", default=None)
    pre.add_argument("--method", default="sac-fast" if command == "train" else "wsrl")
    pre.add_argument("--from", dest="from_path", default=None)
    known = pre.parse_known_args(args)[0]
    if command == "pretrain":
        base = offline_preset(known.preset, known.algo)
    else:
        base = method(known.method, command).apply(online_preset(known.preset))
    if command == "finetune" and known.from_path:  # default env: the one the checkpoint was trained for
        from wsrl import checkpoint

        trained_for = checkpoint.load_meta(checkpoint.resolve(known.from_path)).get("env")
        base = dataclasses.replace(base, env=trained_for or base.env)
    parser = _Parser(prog=f"wsrl {command}", description=COMMANDS[command])
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help="hyperparameter preset of a benchmark family; other flags override it")
    if command == "finetune":
        parser.add_argument("--from", dest="from_path", required=True,
                            help="run directory or checkpoint directory to start from")
    if command in ("train", "finetune"):
        names = [n for n, m in METHODS.items() if m.from_checkpoint == (command == "finetune")]
        parser.add_argument("--method", default=names[0], choices=names,
                            help="; ".join(f"{n}: {METHODS[n].about}" for n in names))
    parser.add_argument("--out", default=None, help="run directory to write (default: runs/COMMAND_ENV_SEED_TIME)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it already holds a run")
    add_config_arguments(parser, base)
    return parser, base


def _run(command: str, args: Sequence[str]) -> int:
    from wsrl.train.offline import run_offline
    from wsrl.train.online import run_online

    parser, base = _run_parser(command, args)
    ns = parser.parse_args(args)
    config = config_from_arguments(base, ns)
    name = Path(config.dataset).name if command == "pretrain" else config.env
    out = ns.out or f"runs/{command}_{name}_seed{config.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    line = shlex.join(["wsrl", command, *args])
    if command == "pretrain":
        summary = run_offline(config, out, overwrite=ns.overwrite, command=line)
        steps = f"{summary['grad_steps']} gradient steps"
    else:
        summary = run_online(config, out, init_from=getattr(ns, "from_path", None), overwrite=ns.overwrite,
                             command=line)
        steps = f"{summary['env_steps']} env steps, {summary['grad_steps']} gradient steps"
    final = summary["final_eval"]
    result = "no evaluation env" if not final else f"final eval return {final['eval_return']:.1f}"
    if final.get("eval_normalized_score") is not None:
        result += f" (normalised score {final['eval_normalized_score']:.1f})"
    print(f"done: {steps} in {summary['wall_time_s']:.0f}s; {result}; run directory {out}")
    return 0


def _collect(args: Sequence[str]) -> int:
    from wsrl.data.collect import CollectConfig, collect, collect_suite

    parser = _Parser(prog="wsrl collect", description=COMMANDS["collect"])
    parser.add_argument("--out", default=None, help="Minari dataset id to write, e.g. wsrl/hopper-random-v0 "
                        "(sac-ladder: a prefix, e.g. wsrl/hopper, for PREFIX/{medium,medium-replay,expert}-v0)")
    parser.add_argument("--suite", default=None, help="collect every dataset of a suite (benchmarks/suite/NAME.toml)")
    parser.add_argument("--from", dest="from_path", default=None, help="policy recipe: run or checkpoint directory")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that id")
    add_config_arguments(parser, CollectConfig())
    ns = parser.parse_args(args)
    if ns.suite is not None:
        paths = collect_suite(ns.suite, ns.overwrite)
    elif ns.out is None:
        raise UserError("--out DATASET_ID is required (or --suite NAME)")
    else:
        paths = collect(config_from_arguments(CollectConfig(), ns), ns.out, ns.from_path, ns.overwrite)
    for path in paths:
        print(f"done: wrote dataset {path}")
    return 0


def _demo(args: Sequence[str]) -> int:
    from wsrl.demo import run_demo

    parser = _Parser(prog="wsrl demo", description=COMMANDS["demo"])
    parser.add_argument("--quick", action="store_true", help="smoke-test budgets (under 2 minutes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the agents and the evaluation")
    parser.add_argument("--out", default="runs/demo", help="directory for the demo's runs, table and plot")
    ns = parser.parse_args(args)
    run_demo(ns.out, ns.seed, ns.quick)
    return 0


def _route_flags(extra: Sequence[str], preset: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split pass-through flags between pre-training and online runs by which command knows each flag."""
    known = {command: set(_run_parser(command, ["--preset", preset])[0]._option_string_actions)
             for command in ("pretrain", "finetune")}
    groups: list[list[str]] = []
    for token in extra:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    unknown = [g[0] for g in groups if not any(g[0] in flags for flags in known.values())]
    if unknown:
        raise UserError(f"unknown flag(s) {', '.join(unknown)} (see `wsrl compare --help`, `wsrl finetune --help`)")
    pick = lambda command: tuple(t for g in groups if g[0] in known[command] for t in g)  # noqa: E731
    return pick("pretrain"), pick("finetune")


def _leaf(config: object, name: str) -> object:
    """The value of leaf field `name` anywhere in a nested config (None if absent)."""
    for key, value in vars(config).items():
        if key == name:
            return value
        if hasattr(value, "__dataclass_fields__"):
            found = _leaf(value, name)
            if found is not None:
                return found
    return None


def _compare(args: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from wsrl.compare import Comparison, run_comparison, summary_table

    parser = _Parser(prog="wsrl compare", description=COMMANDS["compare"],
                     epilog="Other flags (e.g. --critic-hidden-dims 64 64) are passed to every run.")
    parser.add_argument("--dataset", required=True, help="offline dataset (Minari id or directory, or D4RL file)")
    parser.add_argument("--methods", required=True, help=f"comma-separated, from: {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method")
    parser.add_argument("--steps", type=int, required=True, help="online env steps per run")
    parser.add_argument("--offline-steps", type=int, required=True, help="offline gradient steps of each pre-training")
    parser.add_argument("--out", required=True, help="comparison directory (an interrupted one resumes)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS), help="benchmark family preset")
    parser.add_argument("--env", default="", help="environment (default: the dataset's)")
    parser.add_argument("--workers", type=int, default=1, help="runs at a time (local processes)")
    ns, extra = parser.parse_known_args(args)
    pretrain_flags, online_flags = _route_flags(extra, ns.preset)
    methods = [m for m in ns.methods.split(",") if m in METHODS]
    base = online_preset(ns.preset)
    for flag in online_flags:
        name = flag[2:].replace("-", "_") if flag.startswith("--") else None
        clashing = [m for m in methods if name and _leaf(METHODS[m].apply(base), name) != _leaf(base, name)]
        if clashing:
            raise UserError(f"{flag} would override what --methods {', '.join(clashing)} set; drop it (each "
                            "method's settings are part of what is compared)")
    comparison = Comparison(ns.dataset, tuple(m for m in ns.methods.split(",") if m), ns.seeds, ns.steps,
                            ns.offline_steps, Path(ns.out), ns.preset, ns.env, ns.workers, pretrain_flags,
                            online_flags)
    results = run_comparison(comparison)
    table = Table(title=f"wsrl compare: {ns.dataset}")
    for column in ("method", "seeds", "score at start", "score at end", "area under curve", "regret"):
        table.add_column(column, no_wrap=True)
    for row in summary_table(results):
        table.add_row(*row)
    Console(width=max(Console().width, 100)).print(table)  # whole cells, also in a log file (80 columns)
    print(f"results: {Path(ns.out) / 'results.csv'}, figure: {Path(ns.out) / 'comparison.png'}")
    return 0


def _plot(args: Sequence[str]) -> int:
    from wsrl.plots import plot_runs

    parser = _Parser(prog="wsrl plot", description=COMMANDS["plot"])
    parser.add_argument("runs", nargs="+", help="run directories (names differing by a trailing seedN share a curve)")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", default=None, help="figure title")
    ns = parser.parse_args(args)
    print(f"wrote {plot_runs(ns.runs, ns.out, ns.title)}")
    return 0


def _data(args: Sequence[str]) -> int:
    from wsrl.data.loaders import describe, read_dataset

    parser = _Parser(prog="wsrl data", description=COMMANDS["data"])
    parser.add_argument("action", choices=["info"], help="what to do with the dataset")
    parser.add_argument("dataset", help="Minari dataset id or directory, or D4RL hdf5 file")
    ns = parser.parse_args(args)
    for key, value in describe(read_dataset(ns.dataset)).items():
        print(f"{key:<24} {value}")
    return 0


def _eval(args: Sequence[str]) -> int:
    from wsrl.evaluation import evaluate_checkpoint

    parser = _Parser(prog="wsrl eval", description=COMMANDS["eval"])
    parser.add_argument("--from", dest="from_path", required=True, help="run directory or checkpoint directory")
    parser.add_argument("--env", default=None, help="environment id (default: the one the checkpoint was trained on)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="number of evaluation episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first evaluation episode")
    ns = parser.parse_args(args)
    if ns.eval_episodes < 1:
        raise UserError(f"--eval-episodes must be a positive integer, got {ns.eval_episodes}")
    result = evaluate_checkpoint(ns.from_path, ns.env, ns.eval_episodes, ns.seed)
    print(json.dumps(result, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] in ("-h", "--help"):
            print(_top_help())
            return 0
        command, rest = args[0], args[1:]
        if command not in COMMANDS:
            raise UserError(f"unknown command {command!r}; choose one of {', '.join(COMMANDS)}")
        handlers = {"eval": _eval, "data": _data, "collect": _collect, "plot": _plot, "demo": _demo,
                    "compare": _compare}
        code = handlers.get(command, lambda a: _run(command, a))(rest)
    except UserError as e:
        print(f"wsrl: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("wsrl: interrupted", file=sys.stderr)
        code = 130
    if argv is None:
        sys.exit(code)
    return code
