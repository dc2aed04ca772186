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

from wsrl import checkpoint
from wsrl.agents import agent_from_meta
from wsrl.agents.common import Agent
from wsrl.agents.cql import CQLAgent
from wsrl.agents.iql import IQLAgent
from wsrl.config import OfflineConfig
from wsrl.data.loaders import RawDataset, read_dataset, task_transitions
from wsrl.data.transitions import Transitions
from wsrl.envs import make_env, space_dims
from wsrl.errors import Diverged, Stopped, UserError
from wsrl.evaluation import evaluate
from wsrl.runlog import ProgressBar, RunLogger
from wsrl.train import rundir
from wsrl.train.lifecycle import (
    CheckpointClock,
    StopRequest,
    check_metrics,
    check_parameters,
    stop_signals,
)
from wsrl.train.online import LOOP_FILE, LOOP_FORMAT


def dataset_transitions(config: OfflineConfig, raw: RawDataset) -> Transitions:
    """The dataset's transitions under the config's reward convention."""
    return task_transitions(raw, config.reward_scale, config.reward_bias, config.agent.gamma, config.binary_reward,
                            config.sparse_failure_reward, config.terminate_on_success, config.action_limit)


@jax.jit
def _offline_update(agent: Agent, data: dict[str, jax.Array]) -> tuple[Agent, dict[str, jax.Array]]:
    """Sample utd * batch_size dataset transitions uniformly and update once (one device call)."""
    agent, key = agent.split_rng()
    size = agent.config.utd * agent.config.batch_size
    idx = jax.random.randint(key, (size,), 0, data["rewards"].shape[0])
    return agent.update({k: v[idx] for k, v in data.items()})


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
    """What stays fixed while pre-training: config, data, evaluation env, output."""

    config: OfflineConfig
    data: dict[str, jax.Array]
    eval_env: gym.Env | None
    env_id: str | None
    reference: tuple[float, float] | None
    dims: tuple[int, int]
    logger: RunLogger
    out: Path
    clock: CheckpointClock
    stop: StopRequest
    started: float = field(default_factory=time.perf_counter)


def _prepare(config: OfflineConfig) -> tuple[RawDataset, Transitions, gym.Env | None]:
    """Read the dataset under the config's conventions and make the evaluation env (checked against the data)."""
    config.validate()
    raw = read_dataset(config.dataset)
    transitions = dataset_transitions(config, raw)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    eval_env = _eval_env(config, raw)
    if eval_env is not None and space_dims(eval_env) != (obs_dim, action_dim):
        raise UserError(f"dataset {config.dataset} has observation/action dims {obs_dim}/{action_dim} but "
                        f"{config.env or raw.env_id} has {space_dims(eval_env)[0]}/{space_dims(eval_env)[1]}; pass "
                        "the env it was collected in")
    return raw, transitions, eval_env


def run_offline(config: OfflineConfig, out: str | Path, overwrite: bool = False, command: str = "") -> dict[str, Any]:
    """Pre-train into run directory `out`; returns the summary also written to summary.json."""
    out = Path(out)
    raw, transitions, eval_env = _prepare(config)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    agent = create_agent(config, obs_dim, action_dim)
    rundir.prepare(out, overwrite)
    rundir.write_config(out, config, command, kind="offline", dataset_transitions=len(transitions),
                        eval_env=config.env or raw.env_id)
    return _train(config, out, raw, transitions, eval_env, RunLogger(out, "grad_step"),
                  {"agent": agent, "step": 0, "last_eval": {}, "wall_time": 0.0})


def resume_offline(out: Path, config: OfflineConfig, directory: Path, on_start: Callable[[], None]) -> dict[str, Any]:
    """Continue pre-training in `out` from its checkpoint `directory` up to `config.steps`; `on_start` runs once all
    input was checked."""
    raw, transitions, eval_env = _prepare(config)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    directory, meta = checkpoint.load_for_env(directory, obs_dim, action_dim, config.env or raw.env_id or "the data")
    try:
        record = json.loads((directory / LOOP_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"checkpoint {directory}: no readable {LOOP_FILE} ({e}); it was not written by a resumable "
                        "run") from None
    agent = checkpoint.restore(agent_from_meta(meta), directory)
    on_start()
    logger = RunLogger(out, "grad_step", resume_at=(record["metrics_bytes"], record["step"]))
    return _train(config, out, raw, transitions, eval_env, logger, {**record, "agent": agent})


def _train(config: OfflineConfig, out: Path, raw: RawDataset, transitions: Transitions, eval_env: gym.Env | None,
           logger: RunLogger, state: dict[str, Any]) -> dict[str, Any]:
    """The pre-training loop from `state` (agent, step, last_eval, wall_time) to config.steps."""
    data = jax.device_put({k: v for k, v in transitions.as_dict().items() if k != "dones"})
    dims = (transitions.observations.shape[1], transitions.actions.shape[1])
    with stop_signals() as stop:
        run = OfflineRun(config, data, eval_env, config.env or raw.env_id, raw.reference, dims, logger, out,
                         CheckpointClock(config.checkpoint_every, config.checkpoint_minutes), stop)
        try:
            _loop(run, state)
            _save(run, state)
        except Diverged as e:
            rundir.write_summary(out, {"dataset": config.dataset, "algo": config.algo, "grad_steps": state["step"],
                                       "diverged": {"step": e.step, "quantity": e.quantity}})
            raise
        finally:
            logger.close()
            if eval_env is not None:
                eval_env.close()
    summary = {"dataset": config.dataset, "algo": config.algo, "grad_steps": state["step"],
               "wall_time_s": _elapsed(run, state), "final_eval": state["last_eval"]}
    rundir.write_summary(out, summary)
    return summary


def _elapsed(run: OfflineRun, state: dict[str, Any]) -> float:
    return state["wall_time"] + time.perf_counter() - run.started


def _loop(run: OfflineRun, state: dict[str, Any]) -> None:
    """Update, log, evaluate, checkpoint: once per gradient step."""
    config = run.config
    with ProgressBar(config.steps, f"{config.algo} offline") as progress:
        while state["step"] < config.steps:
            state["agent"], metrics = _offline_update(state["agent"], run.data)
            state["step"] = step = state["step"] + 1
            if step % config.log_every == 0:
                values = {k: float(v) for k, v in metrics.items()}
                run.logger.log(_row(run, state, values))
                check_metrics(step, values)
            if run.eval_env is not None and (step % config.eval_every == 0 or step == config.steps):
                state["last_eval"] = evaluate(state["agent"], run.eval_env, config.eval_episodes,
                                              rundir.eval_seed(config.seed), run.env_id, run.reference)
                run.logger.log(_row(run, state, state["last_eval"]))
            if run.clock.due(step) or run.stop.signal:
                _save(run, state)
            if run.stop.signal:
                raise Stopped(run.stop.exit_code, f"stopped at gradient step {step} after writing a checkpoint; "
                                                  f"continue with `wsrl resume {run.out}`")
            progress.advance(step, state["last_eval"].get("eval_return"))


def _row(run: OfflineRun, state: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {"env_step": 0, "grad_step": state["step"], "phase": "offline", "wall_time": _elapsed(run, state), **extra}


def _save(run: OfflineRun, state: dict[str, Any]) -> None:
    """A checkpoint that `wsrl resume` continues exactly (the agent holds the batch-sampling rng)."""
    step, agent = state["step"], state["agent"]
    directory = run.out / "checkpoints" / f"step_{step}"
    if directory.is_dir():
        return
    check_parameters(step, agent)
    record = {"format": LOOP_FORMAT, "step": step, "last_eval": state["last_eval"],
              "metrics_bytes": run.logger.position, "wall_time": _elapsed(run, state)}
    checkpoint.save(agent, directory, checkpoint.metadata(agent, *run.dims, run.env_id, 0, dataset=run.config.dataset),
                    {LOOP_FILE: json.dumps(record).encode()})
    checkpoint.prune(run.out, run.config.keep_checkpoints)
    run.clock.saved()
