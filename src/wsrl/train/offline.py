"""Offline pre-training (CQL / Cal-QL / IQL) on a dataset, writing a checkpoint that `wsrl finetune` restores whole."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax

from wsrl import checkpoint, rundir
from wsrl.agents import LEARNERS, agent_from_meta
from wsrl.agents.common import Agent, over_seeds, stack, take, update_jit
from wsrl.config import OfflineConfig
from wsrl.data.loaders import RawDataset, read_dataset, task_transitions, to_unit_actions
from wsrl.data.transitions import Transitions
from wsrl.envs import make_env, native_action_space, space_dims
from wsrl.errors import UserError
from wsrl.evaluation import evaluate
from wsrl.runlog import ProgressBar
from wsrl.train import harness
from wsrl.train.harness import Harness
from wsrl.train.lifecycle import check_metrics


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
    return LEARNERS[config.algo].create(config.agent, obs_dim, action_dim, config.seed)


@dataclass
class OfflineState:
    """One seed's pre-training progress on the host; with its agent (which holds the batch-sampling rng), what a
    checkpoint must hold to continue it exactly."""

    step: int = 0
    last_eval: dict[str, float] = field(default_factory=dict)
    wall_time_before: float = 0.0  # seconds spent before the last resume

    def record(self, h: Harness) -> dict[str, Any]:
        return {"step": self.step, "last_eval": self.last_eval, "wall_time": h.elapsed(self.wall_time_before)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OfflineState:
        return cls(record["step"], record["last_eval"], record["wall_time"])


# The JSON types of the offline loop.json's fields (`OfflineState.record`), checked where it is read.
OFFLINE_LOOP_FIELDS = {"step": int, "last_eval": dict, "metrics_bytes": int, "wall_time": (int, float)}


@dataclass(frozen=True)
class OfflineRun:
    """What stays fixed while pre-training: config (of the first seed), data, evaluation env, each seed's config,
    and the harness (outputs, loggers, clock, stop)."""

    config: OfflineConfig
    data: dict[str, jax.Array]
    eval_env: gym.Env | None
    env_id: str | None
    reference: tuple[float, float] | None
    dims: tuple[int, int]
    configs: tuple[OfflineConfig, ...]
    h: Harness


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
    configs = [dataclasses.replace(config, seed=seed) for seed, _ in rundir.seed_dirs(out, config.seed, seeds)]
    agents = [create_agent(c, obs_dim, action_dim) for c in configs]
    about = {"kind": "offline", "dataset_transitions": len(transitions), "eval_env": config.env or raw.env_id}
    harness.start(out, configs, command, overwrite, {"seeds": [c.seed for c in configs], **about}, [about] * seeds)
    return _train(configs, out, raw, transitions, eval_env, stack(agents), [OfflineState() for _ in configs])


def resume_offline(out: Path, config: OfflineConfig, directories: list[Path],
                   on_start: Callable[[], None]) -> dict[str, Any]:
    """Continue pre-training in `out` from its checkpoint `directories` (one per seed) up to `config.steps`;
    `on_start` runs once all input was checked."""
    raw, transitions, eval_env = _prepare(config)
    obs_dim, action_dim = transitions.observations.shape[1], transitions.actions.shape[1]
    agents, records = [], []
    for directory in directories:
        directory, meta = checkpoint.load_for_env(directory, obs_dim, action_dim,
                                                  config.env or raw.env_id or "the data")
        records.append(harness.read_loop(directory, OFFLINE_LOOP_FIELDS))
        agents.append(checkpoint.restore(agent_from_meta(meta), directory))
    on_start()
    configs = [dataclasses.replace(config, seed=seed) for seed, _ in rundir.seed_dirs(out, config.seed,
                                                                                       len(directories))]
    return _train(configs, out, raw, transitions, eval_env, stack(agents),
                  [OfflineState.from_record(r) for r in records],
                  resume_at=[(r["metrics_bytes"], r["step"]) for r in records])


def _train(configs: list[OfflineConfig], out: Path, raw: RawDataset, transitions: Transitions,
           eval_env: gym.Env | None, agents: Agent, states: list[OfflineState],
           resume_at: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """The pre-training loop of every seed from its state to config.steps, in the harness."""
    config = configs[0]
    data = jax.device_put({k: v for k, v in transitions.as_dict().items() if k != "dones"})
    dims = (transitions.observations.shape[1], transitions.actions.shape[1])
    with harness.harness(out, configs, "grad_step", resume_at) as h:
        run = OfflineRun(config, data, eval_env, config.env or raw.env_id, raw.reference, dims, tuple(configs), h)

        def body() -> None:
            final = _loop(run, states, agents)
            _save(run, states, final)

        def summary(k: int) -> dict[str, Any]:
            return {"dataset": config.dataset, "algo": config.algo, "grad_steps": states[k].step,
                    "wall_time_s": h.elapsed(states[k].wall_time_before), "final_eval": states[k].last_eval}

        return harness.execute(h, body, summary, close=eval_env.close if eval_env is not None else lambda: None)


def _loop(run: OfflineRun, states: list[OfflineState], agents: Agent) -> Agent:
    """Update (every seed in one call), log, evaluate, checkpoint: once per gradient step; returns the agents."""
    config, h = run.config, run.h
    with ProgressBar(config.steps, f"{config.algo} offline") as progress:
        while states[0].step < config.steps:
            agents, metrics = _offline_update(agents, run.data)
            step = states[0].step + 1
            for state in states:
                state.step = step
            if step % config.log_every == 0:
                values = jax.device_get(metrics)
                for k, state in enumerate(states):
                    seed_values = {name: float(v[k]) for name, v in values.items()}
                    h.loggers[k].log(_row(run, state, seed_values))
                    check_metrics(step, seed_values, h.whose(k))
            if run.eval_env is not None and (step % config.eval_every == 0 or step == config.steps):
                for k, state in enumerate(states):
                    state.last_eval = evaluate(take(agents, k), run.eval_env, config.eval_episodes,
                                               rundir.eval_seed(run.configs[k].seed), run.env_id, run.reference)
                    h.loggers[k].log(_row(run, state, state.last_eval))
            if h.clock.due(step) or h.stop.signal:
                _save(run, states, agents)
            h.stop_if_asked(step, "gradient step")
            progress.advance(step, [s.last_eval["eval_return"] for s in states if s.last_eval])
    return agents


def _row(run: OfflineRun, state: OfflineState, extra: dict[str, Any]) -> dict[str, Any]:
    return {"env_step": 0, "grad_step": state.step, "phase": "offline",
            "wall_time": run.h.elapsed(state.wall_time_before), **extra}


def _save(run: OfflineRun, states: list[OfflineState], agents: Agent) -> None:
    """A checkpoint per seed that `wsrl resume` continues exactly."""
    for k, state in enumerate(states):
        agent = take(agents, k)
        meta = checkpoint.metadata(agent, *run.dims, run.env_id, 0, dataset=run.config.dataset)
        run.h.save(k, state.step, agent, meta, state.record(run.h), run.config.keep_checkpoints)
    run.h.clock.saved()
