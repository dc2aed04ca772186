"""Offline pre-training (CQL / Cal-QL / IQL) on a dataset, writing a checkpoint that `wsrl finetune` restores whole."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax

from wsrl import __version__, checkpoint
from wsrl.agents.cql import CQLAgent, CQLConfig
from wsrl.agents.iql import IQLAgent, IQLConfig
from wsrl.config import to_dict
from wsrl.data.loaders import RawDataset, read_dataset, task_transitions
from wsrl.data.transitions import Transitions
from wsrl.envs import make_env, space_dims
from wsrl.errors import UserError
from wsrl.evaluation import evaluate
from wsrl.logging import ProgressBar, RunLogger
from wsrl.train.online import EVAL_SEED_OFFSET, prepare_run_dir


@dataclass(frozen=True)
class OfflineConfig:
    """Offline pre-training: dataset, its reward convention, budget, evaluation, and the learner."""

    dataset: str = ""
    """Minari dataset id (in $MINARI_DATASETS_PATH or ~/.minari/datasets), Minari directory, or D4RL hdf5 file."""
    algo: Literal["calql", "cql", "iql"] = "cql"
    """Offline algorithm: Cal-QL (CQL with the return-to-go lower bound), CQL, or IQL."""
    env: str = ""
    """Environment for evaluation (default: the one named in the dataset's metadata)."""
    steps: int = 250_000
    """Offline gradient steps."""
    seed: int = 0
    """Seed of the agent, the batch sampling and the evaluation episodes."""
    eval_every: int = 50_000
    """Evaluate every this many gradient steps (and at the end), when the env can be made."""
    eval_episodes: int = 20
    """Episodes per evaluation (deterministic policy, unscaled rewards)."""
    log_every: int = 1000
    """Write training metrics every this many gradient steps."""
    reward_scale: float = 1.0
    """Dataset reward scale (applied once, when the dataset is loaded)."""
    reward_bias: float = 0.0
    """Dataset reward bias (applied once, when the dataset is loaded)."""
    sparse_failure_reward: float | None = None
    """Raw failure reward of a sparse task: all-failure episodes get r / (1 - gamma) as return-to-go."""
    binary_reward: bool = False
    """Rewards -1 / 0 from the success flags (the dataset's infos/success, the eval env's info) (Adroit binary)."""
    terminate_on_success: bool = False
    """Evaluation episodes end at the first success (goal tasks)."""
    action_limit: float | None = 0.99999
    """Clip dataset actions to +- this value (none: no clipping)."""
    agent: CQLConfig | IQLConfig = field(default_factory=CQLConfig)
    """The learner: a CQLConfig for calql / cql, an IQLConfig for iql."""

    def validate(self) -> None:
        if not self.dataset:
            raise UserError("--dataset is required: a Minari id or directory, or a D4RL hdf5 file")
        for name in ("steps", "eval_every", "eval_episodes", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        expected = IQLConfig if self.algo == "iql" else CQLConfig
        if not isinstance(self.agent, expected):
            raise UserError(f"--algo {self.algo} needs a {expected.__name__}, got a {type(self.agent).__name__}")
        try:
            self.agent.validate()
        except ValueError as e:
            raise UserError(f"impossible agent config: {e}") from None


def dataset_transitions(config: OfflineConfig, raw: RawDataset) -> Transitions:
    """The dataset's transitions under the config's reward convention."""
    return task_transitions(raw, config.reward_scale, config.reward_bias, config.agent.gamma, config.binary_reward,
                            config.sparse_failure_reward, config.terminate_on_success, config.action_limit)


@jax.jit
def _offline_update(agent: CQLAgent | IQLAgent, data: dict[str, jax.Array]) -> tuple[Any, dict[str, jax.Array]]:
    agent, key = agent.split_rng()
    size = agent.config.utd * agent.config.batch_size
    idx = jax.random.randint(key, (size,), 0, data["rewards"].shape[0])
    return agent.update({k: v[idx] for k, v in data.items()})


def run_offline(config: OfflineConfig, out: str | Path, overwrite: bool = False, command: str = "") -> dict[str, Any]:
    """Pre-train into run directory `out`; returns the summary also written to summary.json."""
    config.validate()
    out = Path(out)
    raw = read_dataset(config.dataset)
    transitions = dataset_transitions(config, raw)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    env_id, eval_env = config.env or raw.env_id, None
    if config.env:
        eval_env = make_env(config.env, binary_reward=config.binary_reward,
                            terminate_on_success=config.terminate_on_success)
    elif raw.env_id:
        try:
            eval_env = make_env(raw.env_id, binary_reward=config.binary_reward,
                                terminate_on_success=config.terminate_on_success)
        except UserError:
            print(f"wsrl: note: cannot make {raw.env_id} named by the dataset; pre-training without evaluation",
                  file=sys.stderr)
    if eval_env is not None and space_dims(eval_env) != (obs_dim, action_dim):
        raise UserError(f"dataset {config.dataset} has observation/action dims {obs_dim}/{action_dim} but {env_id} "
                        f"has {space_dims(eval_env)[0]}/{space_dims(eval_env)[1]}; pass the env it was collected in")
    if config.algo == "iql":
        agent_config = config.agent
        agent = IQLAgent.create(agent_config, obs_dim, action_dim, config.seed)
    else:
        agent_config = dataclasses.replace(config.agent, calql=config.algo == "calql")
        agent = CQLAgent.create(agent_config, obs_dim, action_dim, config.seed)
    data = jax.device_put({k: v for k, v in transitions.as_dict().items() if k != "dones"})
    prepare_run_dir(out, overwrite)
    (out / "config.json").write_text(json.dumps(
        {"command": command, "wsrl_version": __version__, "jax_backend": jax.default_backend(),
         "dataset_transitions": len(transitions), "eval_env": env_id, "config": to_dict(config)}, indent=2))
    logger = RunLogger(out)
    start, last_eval = time.perf_counter(), {}

    def row(step: int, extra: dict[str, Any]) -> dict[str, Any]:
        return {"env_step": 0, "grad_step": step, "phase": "offline", "wall_time": time.perf_counter() - start, **extra}

    def run_eval(step: int) -> None:
        nonlocal last_eval
        if eval_env is not None:
            last_eval = evaluate(agent, eval_env, config.eval_episodes, config.seed + EVAL_SEED_OFFSET, env_id,
                                 raw.reference)
            logger.log(row(step, last_eval))

    try:
        with ProgressBar(config.steps, f"{config.algo} offline") as progress:
            for step in range(1, config.steps + 1):
                agent, metrics = _offline_update(agent, data)
                if step % config.log_every == 0:
                    logger.log(row(step, {k: float(v) for k, v in metrics.items()}))
                if step % config.eval_every == 0 or step == config.steps:
                    run_eval(step)
                progress.advance(step, last_eval.get("eval_return"))
    finally:
        logger.close()
        if eval_env is not None:
            eval_env.close()
    checkpoint.save(agent, out / "checkpoints" / f"step_{config.steps}",
                    checkpoint.metadata(config.algo, agent_config, obs_dim, action_dim, env_id, 0, config.steps,
                                        dataset=config.dataset))
    summary = {"dataset": config.dataset, "algo": config.algo, "grad_steps": config.steps,
               "wall_time_s": time.perf_counter() - start, "final_eval": last_eval}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
