"""The `wsrl` command line: every flag comes from the config dataclasses and their field docstrings."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence

from wsrl.config import add_config_arguments, config_from_arguments
from wsrl.errors import UserError
from wsrl.presets import DEFAULT_PRESET, PRESETS, get_preset

COMMANDS = {
    "train": "train the WSRL online learner from scratch, no offline data (the paper's SAC fast)",
    "finetune": "fine-tune a checkpoint online with WSRL: warmup with the frozen policy, then ensemble SAC",
    "eval": "evaluate a checkpoint's deterministic policy",
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


def _run_parser(command: str, preset: str) -> tuple[_Parser, object]:
    base = get_preset(preset)
    parser = _Parser(prog=f"wsrl {command}", description=COMMANDS[command])
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help="hyperparameter preset of a benchmark family; other flags override it")
    if command == "finetune":
        parser.add_argument("--from", dest="from_path", required=True,
                            help="run directory or checkpoint directory to start from")
    parser.add_argument("--out", default=None, help="run directory to write (default: runs/COMMAND_ENV_SEED_TIME)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it already holds a run")
    add_config_arguments(parser, base)
    return parser, base


def _preset_name(args: Sequence[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=DEFAULT_PRESET)
    return pre.parse_known_args(args)[0].preset


def _train_or_finetune(command: str, args: Sequence[str]) -> int:
    from wsrl.train.online import run_online

    parser, base = _run_parser(command, _preset_name(args))
    ns = parser.parse_args(args)
    config = config_from_arguments(base, ns)
    out = ns.out or f"runs/{command}_{config.env}_seed{config.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    summary = run_online(config, out, init_from=getattr(ns, "from_path", None), overwrite=ns.overwrite,
                         command=shlex.join(["wsrl", command, *args]))
    final = summary["final_eval"]
    score = final.get("eval_normalized_score")
    print(f"done: {summary['env_steps']} env steps, {summary['grad_steps']} gradient steps in "
          f"{summary['wall_time_s']:.0f}s; final eval return {final['eval_return']:.1f}"
          + ("" if score is None else f" (normalised score {score:.1f})") + f"; run directory {out}")
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
        code = _eval(rest) if command == "eval" else _train_or_finetune(command, rest)
    except UserError as e:
        print(f"wsrl: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("wsrl: interrupted", file=sys.stderr)
        code = 130
    if argv is None:
        sys.exit(code)
    return code
