"""The Python API: pre-train, train, fine-tune, resume, evaluate and act from a notebook, a script or a robot's
control loop (docs/api.md). Every call writes an ordinary run directory, as the `wsrl` command does; bad input
raises `wsrl.UserError` with one clear message.

    run = wsrl.pretrain({"observations": obs, "actions": act, "rewards": rew, "terminals": term},
                        preset="cpu", algo="calql", out="runs/calql", steps=2000)
    tuned = wsrl.finetune(MyEnv, pretrained=run, preset="cpu", out="runs/wsrl", steps=5000)
    policy = wsrl.load_policy(tuned)
    action = policy(observation)          # numpy in, numpy out, in the env's action units
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wsrl import deploy
from wsrl.config import OfflineConfig, OnlineConfig, flag_name
from wsrl.deploy import EVAL_ACTION_LIMIT
from wsrl.errors import UserError
from wsrl.resolve import network_of_checkpoint, refusal

Dataset = str | os.PathLike | Mapping[str, np.ndarray]
EnvSpec = str | Callable[[], Any]
ARRAY_KEYS = ("observations", "actions", "rewards", "terminals")


@dataclasses.dataclass(frozen=True)
class Run:
    """A run directory written by wsrl: its summary, its metrics and its policy."""

    directory: Path

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json: the final evaluation, budgets and timings ({} while the run has not finished)."""
        from wsrl import rundir

        return rundir.read_summary(self.directory) if rundir.is_finished(self.directory) else {}

    @property
    def config(self) -> dict[str, Any]:
        """config.json's resolved config."""
        from wsrl import rundir

        return rundir.read_config(self.directory)

    @property
    def metrics(self) -> list[dict[str, float]]:
        """metrics.csv's rows (of the first seed, for a run of several), empty cells left out."""
        from wsrl import rundir

        with open(rundir.members(self.directory)[0] / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        return [{k: v if k == "phase" else float(v) for k, v in row.items() if v != ""} for row in rows]

    def policy(self, deterministic: bool = True) -> Policy:
        """The run's newest policy (`load_policy`)."""
        return load_policy(self.directory, deterministic=deterministic)

    def __fspath__(self) -> str:
        return str(self.directory)


class Policy:
    """A checkpoint's policy as a plain function of numpy observations: `policy(obs)` takes one observation (or a
    batch) and returns the action(s) in the env's own units (the agents act in [-1, 1]; the bounds of the env the
    checkpoint was trained on map them back, as the env's RescaleAction did)."""

    def __init__(self, path: str | os.PathLike, deterministic: bool = True, seed: int = 0):
        import jax

        from wsrl import checkpoint, rundir
        from wsrl.agents import agent_from_meta

        source = Path(path)
        directory = checkpoint.resolve(rundir.members(source)[0] if source.is_dir() else source)
        self.meta = checkpoint.load_meta(directory)
        self.checkpoint = directory
        self.deterministic = deterministic
        self.low, self.high = action_bounds(self.meta.get("env"), self.meta["action_dim"])
        agent = checkpoint.restore(agent_from_meta(self.meta), directory)
        self._agent = agent.replace(rng=jax.random.PRNGKey(seed)) if hasattr(agent, "rng") else agent
        self._act = jax.jit(lambda a, o: (a, a.eval_actions(o)) if deterministic else a.sample_actions(o))

    @property
    def observation_dim(self) -> int:
        return int(self.meta["obs_dim"])

    @property
    def action_dim(self) -> int:
        return int(self.meta["action_dim"])

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation, np.float32)
        single = obs.ndim == 1
        batch = obs[None] if single else obs
        if batch.ndim != 2 or batch.shape[1] != self.observation_dim:
            raise UserError(f"the policy takes observations of size {self.observation_dim} (one, or a batch of "
                            f"shape (N, {self.observation_dim})); got shape {obs.shape}")
        self._agent, unit = self._act(self._agent, batch)
        limit = EVAL_ACTION_LIMIT if self.deterministic else 1.0  # as evaluation and wsrl.deploy
        unit = np.clip(np.asarray(unit, np.float64), -limit, limit)
        action = self.low + (unit + 1.0) * 0.5 * (self.high - self.low)
        return (action[0] if single else action).astype(np.float32)


def action_bounds(env: str | None, action_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The native action bounds of `env` (a recorded env id), or [-1, 1] where it cannot be made here."""
    from wsrl.envs import make_env, native_action_space

    unit = np.ones(action_dim)
    if not env:
        return -unit, unit
    try:
        made = make_env(env)
    except UserError:
        return -unit, unit
    space = native_action_space(made)
    made.close()
    return np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)


def load_policy(run_dir_or_checkpoint: str | os.PathLike, *, deterministic: bool = True, seed: int = 0) -> Policy:
    """The newest policy of a run directory (its first seed's, for a run of several) or of a checkpoint directory:
    deterministic tanh(mean) actions, or sampled ones (seeded by `seed`)."""
    return Policy(run_dir_or_checkpoint, deterministic, seed)


def export(run_dir_or_checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the newest policy of a run (or a checkpoint) as a numpy-only file for `wsrl.deploy.NumpyPolicy`: the
    actor's weights, its kind (tanh-squashed or not) and the env's action bounds. Written atomically."""
    from wsrl.agents import LEARNERS

    policy = load_policy(run_dir_or_checkpoint)
    squash = LEARNERS[policy.meta["algo"]].squashed_policy
    arrays = deploy.actor_arrays(policy._agent.actor.params, policy.low, policy.high, squash=squash)
    target = Path(out)
    if target.is_dir():
        raise UserError(f"--out {target} is a directory; give a file name such as policy.npz")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, target)
    return target


def with_overrides(config: Any, overrides: Mapping[str, Any], command: str, method_name: str) -> Any:
    """`config` with each named field set, wherever it sits in the nested config (names as the CLI's flags, with
    underscores); a field the method or algorithm does not use is refused with the CLI's reason."""
    import argparse

    left = dict(overrides)

    def replace(node: Any) -> Any:
        changes = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                changes[f.name] = replace(value)
            elif f.name in left:
                changes[f.name] = _coerce(f.name, left.pop(f.name), value)
        return dataclasses.replace(node, **changes)

    out = replace(config)
    for name in left:
        known = argparse.Namespace(method=method_name)
        reason = refusal(flag_name(name), command, known, config)
        raise UserError(reason.replace("--", "").replace("-", "_") if reason else
                        f"unknown setting {name!r} for {command}; see `wsrl {command} --help` for the settings")
    return out


def _coerce(name: str, value: Any, current: Any) -> Any:
    """`value` in the type of the field it replaces (tuples for layer sizes; ints accepted for floats)."""
    if isinstance(current, tuple) or isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(current, bool) and not isinstance(value, bool):
        raise UserError(f"{name} takes True or False, got {value!r}")
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if current is not None and not isinstance(value, type(current)) and value is not None:
        raise UserError(f"{name} takes a {type(current).__name__}, got {value!r}")
    return value


def _out(out: str | os.PathLike | None, command: str, name: str, seed: int, seeds: int) -> Path:
    from wsrl import rundir

    return Path(out) if out is not None else Path(rundir.default_out(command, name, seed, seeds))


def _command(name: str, **args: Any) -> str:
    return f"wsrl.{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def dataset_source(dataset: Dataset) -> str:
    """A dataset as the config records it: a Minari id or a path as given; a mapping of arrays is checked and saved
    once as a D4RL-style hdf5 file named by its content, under the Minari root's .wsrl-arrays/ (so the run can be
    resumed and repeated from its config.json)."""
    if isinstance(dataset, str | os.PathLike):
        return os.fspath(dataset)
    if not isinstance(dataset, Mapping):
        raise UserError(f"dataset must be a Minari id, a path or a mapping of numpy arrays, got "
                        f"{type(dataset).__name__}")
    import h5py

    from wsrl.data.loaders import minari_root

    missing = [k for k in ARRAY_KEYS if k not in dataset]
    if missing:
        raise UserError(f"the dataset mapping has no {', '.join(missing)}; give {', '.join(ARRAY_KEYS)} and "
                        "timeouts or next_observations")
    known = (*ARRAY_KEYS, "timeouts", "next_observations")
    unknown = sorted(set(dataset) - set(known))
    if unknown:
        raise UserError(f"the dataset mapping has unknown keys {unknown}; it takes {', '.join(known)}")
    arrays = {k: np.asarray(dataset[k]) for k in known if k in dataset}
    n = len(arrays["observations"])
    for key, array in arrays.items():
        if len(array) != n:
            raise UserError(f"dataset[{key!r}] has {len(array)} rows, observations has {n}; give one row per step")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise UserError(f"dataset[{key!r}] holds NaN or infinite values; clean the data first")
    if arrays["observations"].ndim != 2 or arrays["actions"].ndim != 2:
        raise UserError("dataset observations and actions must be 2-D arrays (steps, dim)")
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode() + str(arrays[key].dtype).encode() + str(arrays[key].shape).encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    path = minari_root() / ".wsrl-arrays" / f"{digest.hexdigest()[:20]}.hdf5"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        with h5py.File(tmp, "w") as f:
            for key, array in arrays.items():
                f.create_dataset(key, data=array)
        os.replace(tmp, path)
    return str(path)


# --- the calls --------------------------------------------------------------------------------------------------


def pretrain(dataset: Dataset, *, preset: str = "locomotion", algo: str | None = None, env: EnvSpec | None = None,
             out: str | os.PathLike | None = None, seeds: int = 1, overwrite: bool = False, **overrides: Any) -> Run:
    """Pre-train Cal-QL, CQL or IQL (`algo`; default: the preset's) on `dataset`: a Minari id or directory, a
    D4RL-style hdf5 path, or a mapping of numpy arrays (observations, actions, rewards, terminals, and timeouts or
    next_observations; actions in the env's own units). `env` (default: the dataset's) evaluates the policy, and
    its action bounds map the data's actions to the agents' [-1, 1]. `overrides` set config fields by name (e.g.
    steps=5000, critic_hidden_dims=(64, 64))."""
    from wsrl.envs import env_id
    from wsrl.presets import offline_preset

    source = dataset_source(dataset)
    base = dataclasses.replace(offline_preset(preset, algo), dataset=source, env=env_id(env) if env else "")
    config: OfflineConfig = with_overrides(base, overrides, "pretrain", "")
    return run(config, out, seeds=seeds, overwrite=overwrite,
               command=_command("pretrain", dataset=source, preset=preset, algo=algo, **overrides))


def run(config: OfflineConfig | OnlineConfig, out: str | os.PathLike | None = None, *,
        pretrained: str | os.PathLike | None = None, seeds: int = 1, overwrite: bool = False,
        command: str = "") -> Run:
    """Run a whole config as `pretrain`, `train` and `finetune` resolve it (an OfflineConfig pre-trains, an
    OnlineConfig trains online, from the `pretrained` run or checkpoint if given) into `out` (default: runs/...
    named by the command, task and seed); `command` is what config.json records as the run's command."""
    if isinstance(config, OfflineConfig):
        from wsrl.train.offline import run_offline

        target = _out(out, "pretrain", Path(config.dataset).name, config.seed, seeds)
        run_offline(config, target, overwrite=overwrite, command=command, seeds=seeds)
    else:
        from wsrl.train.online import run_online

        name = "finetune" if pretrained is not None else "train"
        target = _out(out, name, config.env.replace("/", "_").replace(":", "_"), config.seed, seeds)
        run_online(config, target, init_from=None if pretrained is None else os.fspath(pretrained),
                   overwrite=overwrite, command=command, seeds=seeds)
    return Run(target)


def _online(command: str, env: EnvSpec, pretrained: str | os.PathLike | None, preset: str | None, method_name: str,
            out: str | os.PathLike | None, seeds: int, overwrite: bool, overrides: dict[str, Any]) -> Run:
    from wsrl.envs import env_id
    from wsrl.presets import DEFAULT_PRESET, online_preset
    from wsrl.presets.methods import method

    base = dataclasses.replace(method(method_name, command).apply(online_preset(preset or DEFAULT_PRESET)),
                               env=env_id(env))
    config: OnlineConfig = with_overrides(base, overrides, command, method_name)
    if pretrained is not None:
        config = network_of_checkpoint(config, pretrained, set(overrides), preset)
    args = {"env": config.env, **({"pretrained": os.fspath(pretrained)} if pretrained else {}), "preset": preset,
            "method": method_name, **overrides}
    return run(config, out, pretrained=pretrained, seeds=seeds, overwrite=overwrite,
               command=_command(command, **args))


def train(env: EnvSpec, *, preset: str = "locomotion", method: str = "sac-fast", dataset: Dataset | None = None,
          out: str | os.PathLike | None = None, seeds: int = 1, overwrite: bool = False, **overrides: Any) -> Run:
    """Train from scratch on `env` (a Gymnasium id, "package.module:attribute", or a callable returning a
    gymnasium.Env): SAC (fast) by default, or RLPD (`method="rlpd"`, with `dataset`)."""
    if dataset is not None:
        overrides = {**overrides, "dataset": dataset_source(dataset)}
    return _online("train", env, None, preset, method, out, seeds, overwrite, overrides)


def finetune(env: EnvSpec, *, pretrained: str | os.PathLike, preset: str | None = None, method: str = "wsrl",
             out: str | os.PathLike | None = None, seeds: int = 1, overwrite: bool = False,
             **overrides: Any) -> Run:
    """Fine-tune the `pretrained` run (or checkpoint) online on `env` with WSRL (or another `method`). The learner's
    networks are shaped as the checkpoint's; `preset` (default: the locomotion preset) gives the other settings, and
    a preset or override that contradicts the checkpoint's networks is refused."""
    return _online("finetune", env, pretrained, preset, method, out, seeds, overwrite, overrides)


def resume(run_dir: str | os.PathLike, *, steps: int | None = None, env: EnvSpec | None = None,
           fresh_episode: bool = False, command: str | None = None) -> Run:
    """Continue an interrupted run (or extend a finished one to `steps`) from its newest checkpoint. A run made
    from an env callable needs the same callable again as `env`. `fresh_episode`: start a new episode instead of
    replaying the interrupted one's actions (a robot; exact up to the restart). `command`: what config.json records
    as the resuming command (default: this call)."""
    from wsrl.envs import env_id
    from wsrl.train.resume import resume as resume_run

    if env is not None:
        env_id(env)  # registers a callable under the id the run recorded
    if command is None:
        command = _command("resume", run_dir=os.fspath(run_dir), steps=steps, fresh_episode=fresh_episode)
    resume_run(Path(run_dir), steps, command=command, fresh_episode=fresh_episode)
    return Run(Path(run_dir))


def evaluate(policy_or_run: Policy | Run | str | os.PathLike, env: EnvSpec | None = None, episodes: int = 20,
             seed: int = 0) -> dict[str, float]:
    """Deterministic evaluation: mean return (and normalised score, success rate where the task has them) over
    `episodes` episodes of `env` (default: the env the policy was trained on)."""
    from wsrl.envs import env_id, make_env, native_action_space
    from wsrl.evaluation import run_episodes

    policy = policy_or_run if isinstance(policy_or_run, Policy) else load_policy(policy_or_run)
    if episodes < 1:
        raise UserError(f"episodes must be a positive integer, got {episodes}")
    name = env_id(env) if env is not None else policy.meta.get("env")
    if not name:
        raise UserError("the checkpoint records no env; pass env=")
    made = make_env(name)
    space = native_action_space(made)
    to_unit = lambda a: 2.0 * (a - space.low) / (space.high - space.low) - 1.0  # noqa: E731
    try:
        return run_episodes(lambda obs, _: to_unit(policy(obs)), made, episodes, seed, name)
    finally:
        made.close()
