"""Offline pre-training (CQL / Cal-QL / IQL) on a dataset, writing a checkpoint that `wsrl finetune` restores whole."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax

from wsrl import checkpoint
from wsrl.agents.common import Agent
from wsrl.agents.cql import CQLAgent
from wsrl.agents.iql import IQLAgent
from wsrl.config import OfflineConfig
from wsrl.data.loaders import RawDataset, read_dataset, task_transitions
from wsrl.data.transitions import Transitions
from wsrl.envs import make_env, space_dims
from wsrl.errors import UserError
from wsrl.evaluation import evaluate
from wsrl.runlog import ProgressBar, RunLogger
from wsrl.train import rundir


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


def run_offline(config: OfflineConfig, out: str | Path, overwrite: bool = False, command: str = "") -> dict[str, Any]:
    """Pre-train into run directory `out`; returns the summary also written to summary.json."""
    config.validate()
    out = Path(out)
    raw = read_dataset(config.dataset)
    transitions = dataset_transitions(config, raw)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    env_id, eval_env = config.env or raw.env_id, _eval_env(config, raw)
    if eval_env is not None and space_dims(eval_env) != (obs_dim, action_dim):
        raise UserError(f"dataset {config.dataset} has observation/action dims {obs_dim}/{action_dim} but {env_id} "
                        f"has {space_dims(eval_env)[0]}/{space_dims(eval_env)[1]}; pass the env it was collected in")
    agent = create_agent(config, obs_dim, action_dim)
    data = jax.device_put({k: v for k, v in transitions.as_dict().items() if k != "dones"})
    rundir.prepare(out, overwrite)
    rundir.write_config(out, config, command, dataset_transitions=len(transitions), eval_env=env_id)
    logger = RunLogger(out)
    start, last_eval = time.perf_counter(), {}

    def row(step: int, extra: dict[str, Any]) -> dict[str, Any]:
        return {"env_step": 0, "grad_step": step, "phase": "offline", "wall_time": time.perf_counter() - start, **extra}

    try:
        with ProgressBar(config.steps, f"{config.algo} offline") as progress:
            for step in range(1, config.steps + 1):
                agent, metrics = _offline_update(agent, data)
                if step % config.log_every == 0:
                    logger.log(row(step, {k: float(v) for k, v in metrics.items()}))
                if eval_env is not None and (step % config.eval_every == 0 or step == config.steps):
                    last_eval = evaluate(agent, eval_env, config.eval_episodes, rundir.eval_seed(config.seed), env_id,
                                         raw.reference)
                    logger.log(row(step, last_eval))
                progress.advance(step, last_eval.get("eval_return"))
    finally:
        logger.close()
        if eval_env is not None:
            eval_env.close()
    checkpoint.save(agent, out / "checkpoints" / f"step_{config.steps}",
                    checkpoint.metadata(agent, obs_dim, action_dim, env_id, 0, dataset=config.dataset))
    summary = {"dataset": config.dataset, "algo": config.algo, "grad_steps": config.steps,
               "wall_time_s": time.perf_counter() - start, "final_eval": last_eval}
    rundir.write_summary(out, summary)
    return summary
