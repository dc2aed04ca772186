"""The pluggable pieces of the online loop: a method's parts in each seed's loop, and where batches come from.

Method pieces (docs/method.md §2.3, §5), one set per seed: `RandomWarmup` replaces the policy's own sample with
uniform actions during the first K steps (ablation, RLPD); `GuidedStart` lets JSRL's guide act for the first h
steps of each episode and shrinks h as evaluations improve; `OnlineReturns` keeps Cal-QL's Monte-Carlo returns of
online episodes. Each piece owns the state it changes and writes it into the seed's checkpoint (loop.json) under
its own keys, so a method with state is one class here plus one line in `method_pieces`.

Batch source (docs/method.md §2.2, §5): the online buffer only (WSRL), mixed per minibatch with retained
offline data, or with the offline data appended to the buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import numpy as np

from wsrl.agents import LEARNERS
from wsrl.agents.common import Agent
from wsrl.config import OnlineConfig
from wsrl.data.buffer import FIELDS, ReplayBuffer
from wsrl.data.loaders import read_dataset, task_transitions, to_unit_actions
from wsrl.data.transitions import return_to_go
from wsrl.envs import make_env, native_action_space
from wsrl.errors import UserError
from wsrl.evaluation import eval_action
from wsrl.train.harness import Fields

if TYPE_CHECKING:
    from wsrl.train.online import LoopState


class Piece:
    """A method's part in one seed's online loop: it may change the action, follow the rewards and react to
    evaluations; what it changes it holds itself, and `record` / `restore` carry it through the checkpoint's
    loop.json under the keys of `fields` (with their JSON types, checked where loop.json is read)."""

    fields: ClassVar[Fields] = {}

    def choose(self, state: LoopState, action: np.ndarray) -> np.ndarray:
        return action

    def after_step(self, reward: float) -> None:
        """The training reward of the step just taken."""

    def after_eval(self, state: LoopState, score: float) -> None:
        """React to an evaluation (before the state's best evaluation is updated)."""

    def record(self) -> dict[str, Any]:
        return {}

    def restore(self, record: dict[str, Any]) -> None:
        """Take the state back from a loop.json whose `fields` were checked."""


@dataclass(frozen=True)
class RandomWarmup(Piece):
    """Uniform random actions in [-1, 1] for the first `steps` env steps."""

    steps: int
    action_dim: int

    def choose(self, state: LoopState, action: np.ndarray) -> np.ndarray:
        if state.env_step <= self.steps:
            return state.np_rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        return action


@dataclass
class GuidedStart(Piece):
    """JSRL: the guide's deterministic action for the first `horizon` steps of each episode; the horizon shrinks
    by one stage whenever an evaluation is within `tolerance` of the best one so far."""

    guide: Agent
    episode_limit: int
    stages: int
    tolerance: float
    horizon: int
    fields: ClassVar = {"guide_horizon": int}

    def choose(self, state: LoopState, action: np.ndarray) -> np.ndarray:
        if state.episode.length < self.horizon:
            return np.asarray(eval_action(self.guide, state.obs))
        return action

    def after_eval(self, state: LoopState, score: float) -> None:
        if state.env_step > 0 and score >= state.best_eval - self.tolerance * abs(state.best_eval):
            self.horizon = max(0, self.horizon - math.ceil(self.episode_limit / self.stages))

    def record(self) -> dict[str, Any]:
        return {"guide_horizon": self.horizon}

    def restore(self, record: dict[str, Any]) -> None:
        self.horizon = record["guide_horizon"]


@dataclass
class OnlineReturns(Piece):
    """Cal-QL online (docs/method.md §2.3): the Monte-Carlo return-to-go of each online episode, written into the
    buffer when it ends (same rule as datasets); sampling is limited to the rows of finished episodes."""

    gamma: float
    failure_reward: float | None  # the training env's reward of a failed step of a sparse task
    episode_limit: int
    finished: int  # buffer rows of finished episodes (appended offline data included)
    rewards: list[float] = field(default_factory=list)  # the running episode's
    fields: ClassVar = {"returns": dict}

    def after_step(self, reward: float) -> None:
        self.rewards.append(reward)

    def end_episode(self, capacity: int) -> tuple[np.ndarray, np.ndarray]:
        """The buffer rows of the episode that just ended and their return-to-go, rows padded with `capacity`
        (dropped) to a fixed length."""
        values = np.zeros(self.episode_limit, np.float32)
        values[:len(self.rewards)] = return_to_go(np.asarray(self.rewards, np.float32), self.gamma,
                                                  self.failure_reward)
        idx = np.full(self.episode_limit, capacity, np.int32)
        idx[:len(self.rewards)] = self.finished + np.arange(len(self.rewards))
        self.finished, self.rewards = self.finished + len(self.rewards), []
        return idx, values

    def record(self) -> dict[str, Any]:
        return {"returns": {"finished": self.finished, "rewards": list(self.rewards)}}

    def restore(self, record: dict[str, Any]) -> None:
        returns = record["returns"]
        if not (isinstance(returns.get("finished"), int) and isinstance(returns.get("rewards"), list)):
            raise UserError("loop.json's returns are damaged: resume from an earlier checkpoint")
        self.finished, self.rewards = returns["finished"], [float(r) for r in returns["rewards"]]


def method_pieces(config: OnlineConfig, agent: Agent, action_dim: int, guide: Agent | None, episode_limit: int,
                  appended: int) -> tuple[Piece, ...]:
    """One seed's pieces of the method a config asks for, in the order their actions override each other;
    refuses a Cal-QL run whose buffer cannot hold every step."""
    pieces: list[Piece] = []
    if config.warmup_policy == "random" and config.warmup_steps:
        pieces.append(RandomWarmup(config.warmup_steps, action_dim))
    if config.jsrl is not None and guide is not None:
        pieces.append(GuidedStart(guide, episode_limit, config.jsrl.jsrl_stages, config.jsrl.jsrl_tolerance,
                                  config.jsrl.jsrl_initial_horizon or episode_limit))
    if LEARNERS[agent.algo].online_returns:
        if config.buffer_capacity < config.steps + appended:
            raise UserError("Cal-QL online keeps every episode's returns: --buffer-capacity must hold all steps")
        failure = None if config.sparse_failure_reward is None else (
            config.reward_scale * config.sparse_failure_reward + config.reward_bias)
        pieces.append(OnlineReturns(agent.config.gamma, failure, episode_limit, appended))
    return tuple(pieces)


@dataclass(frozen=True)
class BatchSource:
    """Where the update's utd * batch_size transitions come from."""

    offline: dict[str, jax.Array] | None = None  # retained data mixed into every minibatch (device arrays)
    offline_ratio: float = 0.0
    appended_data: dict[str, np.ndarray] | None = None  # retained data copied into the buffer at the start

    @property
    def appended(self) -> int:
        return 0 if self.appended_data is None else len(self.appended_data["rewards"])

    def fill(self, buffer: ReplayBuffer) -> ReplayBuffer:
        return buffer if self.appended_data is None else buffer.extend(self.appended_data)


def retained_data(config: OnlineConfig, gamma: float, obs_dim: int, action_dim: int) -> dict[str, np.ndarray]:
    """The offline transitions a retention method keeps, under the training env's reward convention."""
    dataset = config.retention.dataset
    env = make_env(config.env)
    raw = to_unit_actions(read_dataset(dataset), native_action_space(env))
    env.close()
    data = task_transitions(raw, config.reward_scale, config.reward_bias, gamma,
                            config.binary_reward, config.sparse_failure_reward, config.terminate_on_success)
    if (data.observations.shape[1], data.actions.shape[1]) != (obs_dim, action_dim):
        raise UserError(f"dataset {dataset} has observation/action dims {data.observations.shape[1]}/"
                        f"{data.actions.shape[1]}, {config.env} has {obs_dim}/{action_dim}; retain data of this env")
    return {k: v for k, v in data.as_dict().items() if k in FIELDS}


def batch_source(config: OnlineConfig, gamma: float, obs_dim: int, action_dim: int) -> BatchSource:
    """The batch source of a config: the retained offline data, mixed into each minibatch or appended."""
    if config.retention is None:
        return BatchSource()
    data = retained_data(config, gamma, obs_dim, action_dim)
    if config.retention.retain == "mix":
        return BatchSource(offline=jax.device_put(data), offline_ratio=config.retention.offline_ratio)
    return BatchSource(appended_data=data)
