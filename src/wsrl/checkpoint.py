"""Whole-agent checkpoints: params, targets, optimiser moments, temperature, step counters and rng.

A checkpoint is a directory holding `agent.msgpack` (flax serialisation of the agent pytree) and
`meta.json` (agent config, spaces, env, step). It is written under a temporary name and renamed into
place, so a checkpoint directory is either complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from wsrl._version import __version__
from wsrl.config import ALGO_CONFIGS, from_dict, to_dict
from wsrl.errors import UserError, read_json

AGENT_FILE, META_FILE = "agent.msgpack", "meta.json"


def metadata(agent: Any, obs_dim: int, action_dim: int, env: str | None, env_step: int,
             **extra: Any) -> dict[str, Any]:
    """What meta.json records: enough to rebuild the agent (`agents.agent_from_meta`) and check it against an env."""
    return {"algo": agent.algo, "agent_config": to_dict(agent.config), "obs_dim": obs_dim, "action_dim": action_dim,
            "env": env, "env_step": env_step, "grad_step": int(agent.critic.step), "wsrl_version": __version__,
            **extra}


def save(agent: Any, directory: str | Path, meta: dict[str, Any], files: dict[str, bytes] | None = None) -> Path:
    """Write `agent`, `meta` and extra `files` into `directory` atomically (replacing an older one of that name).

    The files are written into a temporary directory that is renamed into place: a kill during the write leaves
    the previous checkpoints as they were; a failed write (disk full, permissions) is one UserError.
    """
    directory = Path(directory)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / AGENT_FILE).write_bytes(agent_bytes(agent))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        for name, content in (files or {}).items():
            (tmp / name).write_bytes(content)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write checkpoint {directory} ({e.strerror or e}); the earlier checkpoints are "
                        "kept: free space or fix permissions, then `wsrl resume`") from None
    return directory


def agent_bytes(agent: Any) -> bytes:
    """The whole agent pytree, serialised (what agent.msgpack holds)."""
    return serialization.to_bytes(jax.device_get(agent))


def checkpoints(run_dir: Path) -> list[Path]:
    """A run's complete checkpoints, oldest first."""
    found = (p for p in (run_dir / "checkpoints").glob("step_*") if (p / AGENT_FILE).is_file())
    return sorted(found, key=lambda p: int(p.name.split("_")[1])) if (run_dir / "checkpoints").is_dir() else []


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (0: keep all)."""
    for old in checkpoints(run_dir)[:-keep] if keep else []:
        shutil.rmtree(old, ignore_errors=True)


def resolve(path: str | Path) -> Path:
    """A checkpoint directory itself, or the newest one under a run directory's checkpoints/."""
    path = Path(path)
    if (path / AGENT_FILE).is_file() and (path / META_FILE).is_file():
        return path
    candidates = checkpoints(path)
    if candidates:
        return candidates[-1]
    if not path.exists():
        raise UserError(f"--from {path}: no such file or directory; give a run directory or a checkpoint")
    from wsrl.rundir import group_seeds

    seeds = group_seeds(path)
    if seeds is not None:
        raise UserError(f"{path} holds a run of {len(seeds)} seeds; give one seed's run directory, e.g. "
                        f"{path / f'seed{seeds[0]}'}")
    raise UserError(f"--from {path}: not a wsrl checkpoint (no {AGENT_FILE} + {META_FILE}, "
                    "nor checkpoints/step_*/ inside); give a run directory written by wsrl")


def load_meta(directory: Path) -> dict[str, Any]:
    """meta.json, checked where it is read: a JSON object naming a known learner, a config of that learner, positive
    observation and action sizes, an env id or null, and non-negative step counts; anything else is one UserError
    naming the file."""
    return read_json(directory / META_FILE, _meta_problem,
                     "the checkpoint is damaged: use an earlier one (checkpoints/step_*) or train again")


def _meta_problem(meta: Any) -> str | None:
    if not isinstance(meta, dict):
        return f"not a JSON object but a {type(meta).__name__}"
    algo = meta.get("algo", "sac")
    if algo not in ALGO_CONFIGS:
        return f"unknown learner {algo!r} (known: {', '.join(ALGO_CONFIGS)})"
    for key in ("obs_dim", "action_dim"):
        if type(meta.get(key)) is not int or meta[key] < 1:
            return f"{key} must be a positive integer, got {meta.get(key)!r}"
    for key in ("env_step", "grad_step"):
        if key in meta and (type(meta[key]) is not int or meta[key] < 0):
            return f"{key} must be a non-negative integer, got {meta[key]!r}"
    if meta.get("env") is not None and not isinstance(meta["env"], str):
        return f"env must be an env id or null, got {meta['env']!r}"
    if not isinstance(meta.get("agent_config"), dict):
        return f"agent_config must be a JSON object, got {meta.get('agent_config')!r}"
    try:
        from_dict(ALGO_CONFIGS[algo], meta["agent_config"]).validate()
    except (TypeError, ValueError) as e:
        return f"agent_config is not a {algo} config ({e})"
    return None


def agent_config(meta: dict[str, Any]) -> Any:
    """The learner config a meta.json (checked by `load_meta`) records."""
    return from_dict(ALGO_CONFIGS[meta.get("algo", "sac")], meta["agent_config"])


def load_for_env(path: str | Path, obs_dim: int, action_dim: int, env_id: str) -> tuple[Path, dict[str, Any]]:
    """Resolve a checkpoint and its meta.json, refusing one trained with other observation/action sizes."""
    directory = resolve(path)
    meta = load_meta(directory)
    if (meta.get("obs_dim"), meta.get("action_dim")) != (obs_dim, action_dim):
        raise UserError(f"checkpoint {directory} was trained with observation dim {meta.get('obs_dim')} and action "
                        f"dim {meta.get('action_dim')}, but {env_id} has {obs_dim} and {action_dim}; use the env it "
                        "was trained on")
    return directory, meta


def restore(template: Any, directory: Path, drop: tuple[str, ...] = (), agent_file: str = AGENT_FILE) -> Any:
    """Load the checkpoint into an agent shaped like `template`; the shapes must match exactly.

    Top-level entries named in `drop` (state the template's agent does not have) are discarded.
    """
    try:
        state = serialization.msgpack_restore((directory / agent_file).read_bytes())
    except Exception as e:  # msgpack raises several unrelated types on corrupt input
        raise UserError(f"checkpoint {directory}: corrupt or missing {agent_file} ({type(e).__name__}); "
                        "resume from an earlier checkpoint") from None
    state = {k: v for k, v in state.items() if k not in drop} if isinstance(state, dict) else state
    expected = serialization.to_state_dict(template)
    mismatch = _first_mismatch(expected, state)
    if mismatch:
        raise UserError(f"checkpoint {directory} does not fit the configured agent ({mismatch}); "
                        "use the same preset and network sizes as the run that wrote it")
    return serialization.from_state_dict(template, state)


def _first_mismatch(expected: Any, found: Any, where: str = "") -> str | None:
    if isinstance(expected, dict):
        if not isinstance(found, dict) or set(expected) != set(found):
            keys = sorted(set(found) ^ set(expected)) if isinstance(found, dict) else "structure"
            return f"{where or 'agent'}: different entries {keys}"
        for key in expected:
            problem = _first_mismatch(expected[key], found[key], f"{where}/{key}")
            if problem:
                return problem
        return None
    if expected is None:
        return None if found is None else f"{where}: unexpected value"
    shape_e, shape_f = np.shape(expected), np.shape(found)
    return None if shape_e == shape_f else f"{where}: shape {shape_f} where {shape_e} was expected"
