"""Offline pre-training (CQL / Cal-QL / IQL) on a dataset, writing a checkpoint that `wsrl finetune` restores whole."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax

from wsrl import checkpoint, rundir
from wsrl.agents import agent_from_meta
from wsrl.agents.common import Agent, over_seeds, stack, take, update_jit
from wsrl.agents.cql import CQLAgent
from wsrl.agents.iql import IQLAgent
from wsrl.config import OfflineConfig
from wsrl.data.loaders import RawDataset, read_dataset, task_transitions, to_unit_actions
from wsrl.data.transitions import Transitions
from wsrl.envs import make_env, native_action_space, space_dims
from wsrl.errors import Diverged, Stopped, UserError
from wsrl.evaluation import evaluate
from wsrl.runlog import ProgressBar, RunLogger, tracking
from wsrl.train.lifecycle import (
    CheckpointClock,
    StopRequest,
    check_metrics,
    check_parameters,
    stop_signals,
)
from wsrl.train.online import LOOP_FILE, LOOP_FORMAT, read_loop


def dataset_transitions(config: OfflineConfig, raw: RawDataset) -> Transitions:
    """The dataset's transitions under the config's reward convention."""
    return task_transitions(raw, config.reward_scale, config.reward_bias, config.agent.gamma, config.binary_reward,
                            config.sparse_failure_reward, config.terminate_on_success, config.action_limit)


@update_jit
def _offline_update(agents: Agent, data: dict[str, jax.Array]) -> tuple[Agent, dict[str, jax.Array]]:
    """Every seed samples utd * batch_size dataset transitions uniformly and updates once (one device call)."""

    def one(agent: Agent) -> tuple[Agent, dict[str, jax.Array]]:
        agent, key = agent.split_rng()
        size = agent.config.utd * agent.config.batch_size
        idx = jax.random.randint(key, (size,), 0, data["rewards"].shape[0])
        return agent.update({k: v[idx] for k, v in data.items()})

    return over_seeds(one, agents)


def _eval_env(config: OfflineConfig, raw: RawDataset) -> gym.Env | None:
    """The environment to evaluate in: --env, else the dataset's own if it can be made, else none."""
    task = {"binary_reward": config.binary_reward, "terminate_on_success": config.terminate_on_success}
    if config.env:
        return make_env(config.env, **task)
    if raw.env_id:
        try:
            return make_env(raw.env_id, **task)
        except UserError:
            print(f"wsrl: note: cannot make {raw.env_id} named by the dataset; pre-training without evaluation",
                  file=sys.stderr)
    return None


def create_agent(config: OfflineConfig, obs_dim: int, action_dim: int) -> Agent:
    if config.algo == "iql":
        return IQLAgent.create(config.agent, obs_dim, action_dim, config.seed)
    return CQLAgent.create(dataclasses.replace(config.agent, calql=config.algo == "calql"), obs_dim, action_dim,
                           config.seed)


@dataclass(frozen=True)
class OfflineRun:
    """What stays fixed while pre-training: config (of the first seed), data, evaluation env, each seed's config,
    logger and output."""

    config: OfflineConfig
    data: dict[str, jax.Array]
    eval_env: gym.Env | None
    env_id: str | None
    reference: tuple[float, float] | None
    dims: tuple[int, int]
    configs: tuple[OfflineConfig, ...]
    loggers: tuple[RunLogger, ...]
    outs: tuple[Path, ...]
    out: Path
    clock: CheckpointClock
    stop: StopRequest
    started: float = field(default_factory=time.perf_counter)


def _prepare(config: OfflineConfig) -> tuple[RawDataset, Transitions, gym.Env | None]:
    """Read the dataset under the config's conventions and make the evaluation env (checked against the data)."""
    config.validate()
    raw = read_dataset(config.dataset)
    eval_env = _eval_env(config, raw)
    raw = to_unit_actions(raw, native_action_space(eval_env) if eval_env is not None else None)
    transitions = dataset_transitions(config, raw)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    if eval_env is not None and space_dims(eval_env) != (obs_dim, action_dim):
        raise UserError(f"dataset {config.dataset} has observation/action dims {obs_dim}/{action_dim} but "
                        f"{config.env or raw.env_id} has {space_dims(eval_env)[0]}/{space_dims(eval_env)[1]}; pass "
                        "the env it was collected in")
    return raw, transitions, eval_env


def run_offline(config: OfflineConfig, out: str | Path, overwrite: bool = False, command: str = "",
                seeds: int = 1) -> dict[str, Any]:
    """Pre-train `seeds` seeds (config.seed, config.seed + 1, ...; each OUT/seedS/ when several) into run directory
    `out`; returns the summary also written to summary.json."""
    out = Path(out)
    raw, transitions, eval_env = _prepare(config)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    members = rundir.seed_dirs(out, config.seed, seeds)
    configs = [dataclasses.replace(config, seed=seed) for seed, _ in members]
    agents = [create_agent(c, obs_dim, action_dim) for c in configs]
    rundir.prepare(out, overwrite)
    about = {"kind": "offline", "dataset_transitions": len(transitions), "eval_env": config.env or raw.env_id}
    if seeds > 1:
        rundir.write_config(out, config, command, seeds=[seed for seed, _ in members], **about)
    for c, (_, path) in zip(configs, members, strict=True):
        path.mkdir(exist_ok=True)
        rundir.write_config(path, c, command, **about)
    states = [{"step": 0, "last_eval": {}, "wall_time": 0.0} for _ in members]
    loggers = [RunLogger(path, "grad_step", **tracking(config, out, seeds)) for _, path in members]
    return _train(configs, out, raw, transitions, eval_env, loggers, stack(agents), states)


# The JSON types of the offline loop.json's fields (`_save`), checked where it is read.
OFFLINE_LOOP_FIELDS = {"step": int, "last_eval": dict, "metrics_bytes": int, "wall_time": (int, float)}


def resume_offline(out: Path, config: OfflineConfig, directories: list[Path],
                   on_start: Callable[[], None]) -> dict[str, Any]:
    """Continue pre-training in `out` from its checkpoint `directories` (one per seed) up to `config.steps`;
    `on_start` runs once all input was checked."""
    raw, transitions, eval_env = _prepare(config)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    members = rundir.seed_dirs(out, config.seed, len(directories))
    agents, states = [], []
    for directory in directories:
        directory, meta = checkpoint.load_for_env(directory, obs_dim, action_dim,
                                                  config.env or raw.env_id or "the data")
        states.append(read_loop(directory, OFFLINE_LOOP_FIELDS))
        agents.append(checkpoint.restore(agent_from_meta(meta), directory))
    on_start()
    loggers = [RunLogger(path, "grad_step", resume_at=(state["metrics_bytes"], state["step"]),
                         **tracking(config, out, len(members)))
               for (_, path), state in zip(members, states, strict=True)]
    configs = [dataclasses.replace(config, seed=seed) for seed, _ in members]
    return _train(configs, out, raw, transitions, eval_env, loggers, stack(agents), states)


def _train(configs: list[OfflineConfig], out: Path, raw: RawDataset, transitions: Transitions,
           eval_env: gym.Env | None, loggers: list[RunLogger], agents: Agent,
           states: list[dict[str, Any]]) -> dict[str, Any]:
    """The pre-training loop of every seed from its `state` (step, last_eval, wall_time) to config.steps."""
    config = configs[0]
    data = jax.device_put({k: v for k, v in transitions.as_dict().items() if k != "dones"})
    dims = (transitions.observations.shape[1], transitions.actions.shape[1])
    outs = tuple(path for _, path in rundir.seed_dirs(out, config.seed, len(configs)))
    with stop_signals() as stop:
        run = OfflineRun(config, data, eval_env, config.env or raw.env_id, raw.reference, dims, tuple(configs),
                         tuple(loggers), outs, out, CheckpointClock(config.checkpoint_every,
                                                                    config.checkpoint_minutes), stop)
        finished = False
        try:
            agents = _loop(run, states, agents)
            _save(run, states, agents)
            finished = True
        except Diverged as e:
            diverged = {"diverged": {"step": e.step, "quantity": e.quantity}}
            for path, state in zip(outs, states, strict=True):
                rundir.write_summary(path, {"dataset": config.dataset, "algo": config.algo,
                                            "grad_steps": state["step"], **diverged})
            if len(configs) > 1:
                rundir.write_summary(out, diverged)
            raise
        finally:
            for logger in loggers:
                logger.close(finished)
            if eval_env is not None:
                eval_env.close()
    summaries = [{"dataset": config.dataset, "algo": config.algo, "grad_steps": state["step"],
                  "wall_time_s": _elapsed(run, state), "final_eval": state["last_eval"]} for state in states]
    for path, summary in zip(outs, summaries, strict=True):
        rundir.write_summary(path, summary)
    if len(configs) == 1:
        return summaries[0]
    summary = rundir.group_summary(summaries, [c.seed for c in configs])
    rundir.write_summary(out, summary)
    return summary


def _elapsed(run: OfflineRun, state: dict[str, Any]) -> float:
    return state["wall_time"] + time.perf_counter() - run.started


def _loop(run: OfflineRun, states: list[dict[str, Any]], agents: Agent) -> Agent:
    """Update (every seed in one call), log, evaluate, checkpoint: once per gradient step; returns the agents."""
    config = run.config
    with ProgressBar(config.steps, f"{config.algo} offline") as progress:
        while states[0]["step"] < config.steps:
            agents, metrics = _offline_update(agents, run.data)
            step = states[0]["step"] + 1
            for state in states:
                state["step"] = step
            if step % config.log_every == 0:
                values = jax.device_get(metrics)
                for k, state in enumerate(states):
                    seed_values = {name: float(v[k]) for name, v in values.items()}
                    run.loggers[k].log(_row(run, state, seed_values))
                    check_metrics(step, seed_values, _whose(run, k))
            if run.eval_env is not None and (step % config.eval_every == 0 or step == config.steps):
                for k, state in enumerate(states):
                    state["last_eval"] = evaluate(take(agents, k), run.eval_env, config.eval_episodes,
                                                  rundir.eval_seed(run.configs[k].seed), run.env_id, run.reference)
                    run.loggers[k].log(_row(run, state, state["last_eval"]))
            if run.clock.due(step) or run.stop.signal:
                _save(run, states, agents)
            if run.stop.signal:
                raise Stopped(run.stop.exit_code, f"stopped at gradient step {step} after writing a checkpoint; "
                                                  f"continue with `wsrl resume {run.out}`")
            progress.advance(step, [s["last_eval"]["eval_return"] for s in states if s["last_eval"]])
    return agents


def _whose(run: OfflineRun, k: int) -> str:
    return f"seed {run.configs[k].seed}'s " if len(run.configs) > 1 else ""


def _row(run: OfflineRun, state: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {"env_step": 0, "grad_step": state["step"], "phase": "offline", "wall_time": _elapsed(run, state), **extra}


def _save(run: OfflineRun, states: list[dict[str, Any]], agents: Agent) -> None:
    """A checkpoint per seed that `wsrl resume` continues exactly (the agent holds the batch-sampling rng)."""
    for k, state in enumerate(states):
        step, agent = state["step"], take(agents, k)
        directory = run.outs[k] / "checkpoints" / f"step_{step}"
        if directory.is_dir():
            continue
        check_parameters(step, agent, _whose(run, k))
        record = {"format": LOOP_FORMAT, "step": step, "last_eval": state["last_eval"],
                  "metrics_bytes": run.loggers[k].position, "wall_time": _elapsed(run, state)}
        checkpoint.save(agent, directory, checkpoint.metadata(agent, *run.dims, run.env_id, 0,
                                                              dataset=run.config.dataset),
                        {LOOP_FILE: json.dumps(record).encode()})
        checkpoint.prune(run.outs[k], run.config.keep_checkpoints)
    run.clock.saved()
