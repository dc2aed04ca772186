"""The pluggable pieces of the online loop: where actions come from, and where batches come from.

Action sources (docs/method.md §2.3, §5): the policy's own stochastic sample is the default; `RandomWarmup`
replaces it with uniform actions during the first K steps (ablation, RLPD); `GuidedStart` lets JSRL's guide
act for the first h steps of each episode. Sources are immutable; what they change lives in the loop state.

Batch source (docs/method.md §2.2, §5): the online buffer only (WSRL), mixed per minibatch with retained
offline data, or with the offline data appended to the buffer; for Cal-QL continued online, sampling is
limited to finished episodes, whose Monte-Carlo returns are written into the buffer when they end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from wsrl.train.online import LoopState


class ActionSource:
    """Passes the action on unchanged; subclasses take over when their condition holds."""

    def choose(self, state: LoopState, action: np.ndarray) -> np.ndarray:
        return action

    def after_eval(self, state: LoopState, score: float) -> None:
        """React to an evaluation (before the state's best evaluation is updated)."""


@dataclass(frozen=True)
class RandomWarmup(ActionSource):
    """Uniform random actions in [-1, 1] for the first `steps` env steps."""

    steps: int
    action_dim: int

    def choose(self, state: LoopState, action: np.ndarray) -> np.ndarray:
        if state.env_step <= self.steps:
            return state.np_rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        return action


@dataclass(frozen=True)
class GuidedStart(ActionSource):
    """JSRL: the guide's deterministic action for the first `state.guide_horizon` steps of each episode; the
    horizon shrinks by one stage whenever an evaluation is within `tolerance` of the best one so far."""

    guide: Agent
    episode_limit: int
    stages: int
    tolerance: float

    def choose(self, state: LoopState, action: np.ndarray) -> np.ndarray:
        if state.episode.length < state.guide_horizon:
            return np.asarray(eval_action(self.guide, state.obs))
        return action

    def after_eval(self, state: LoopState, score: float) -> None:
        if state.env_step > 0 and score >= state.best_eval - self.tolerance * abs(state.best_eval):
            state.guide_horizon = max(0, state.guide_horizon - math.ceil(self.episode_limit / self.stages))


def action_sources(config: OnlineConfig, action_dim: int, guide: Agent | None,
                   episode_limit: int) -> tuple[ActionSource, ...]:
    """The sources a config asks for, in the order they override each other."""
    sources: list[ActionSource] = []
    if config.warmup_policy == "random" and config.warmup_steps:
        sources.append(RandomWarmup(config.warmup_steps, action_dim))
    if config.jsrl is not None and guide is not None:
        sources.append(GuidedStart(guide, episode_limit, config.jsrl.jsrl_stages, config.jsrl.jsrl_tolerance))
    return tuple(sources)


@dataclass
class EpisodeReturns:
    """Loop state of Cal-QL online: buffer rows of finished episodes, and the running episode's rewards."""

    finished: int
    rewards: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class BatchSource:
    """Where the update's utd * batch_size transitions come from."""

    offline: dict[str, jax.Array] | None = None  # retained data mixed into every minibatch (device arrays)
    offline_ratio: float = 0.0
    appended_data: dict[str, np.ndarray] | None = None  # retained data copied into the buffer at the start
    returns: tuple[float, float | None, int] | None = None  # (gamma, failure reward, episode limit): Cal-QL online

    @property
    def appended(self) -> int:
        return 0 if self.appended_data is None else len(self.appended_data["rewards"])

    def fill(self, buffer: ReplayBuffer) -> ReplayBuffer:
        return buffer if self.appended_data is None else buffer.extend(self.appended_data)

    def new_returns(self) -> EpisodeReturns | None:
        return None if self.returns is None else EpisodeReturns(self.appended)

    def sample_limit(self, state: LoopState) -> int | None:
        """Sample only rows of finished episodes when returns are needed (docs/method.md §2.3)."""
        return None if state.returns is None else state.returns.finished

    def end_episode(self, state: LoopState, capacity: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The buffer rows of the episode that just ended and their return-to-go (same rule as datasets), to be
        written into the buffer's mc_returns; rows padded with `capacity` (dropped) to a fixed length."""
        if state.returns is None:
            return None
        gamma, failure_reward, limit = self.returns
        rewards = state.returns.rewards
        values = np.zeros(limit, np.float32)
        values[:len(rewards)] = return_to_go(np.asarray(rewards, np.float32), gamma, failure_reward)
        idx = np.full(limit, capacity, np.int32)
        idx[:len(rewards)] = state.returns.finished + np.arange(len(rewards))
        state.returns = EpisodeReturns(state.returns.finished + len(rewards))
        return idx, values


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


def batch_source(config: OnlineConfig, agent: Agent, obs_dim: int, action_dim: int,
                 episode_limit: int) -> BatchSource:
    """The batch source of a config and learner; refuses a Cal-QL run whose buffer cannot hold every step."""
    kwargs: dict[str, Any] = {}
    if config.retention is not None:
        data = retained_data(config, agent.config.gamma, obs_dim, action_dim)
        if config.retention.retain == "mix":
            kwargs.update(offline=jax.device_put(data), offline_ratio=config.retention.offline_ratio)
        else:
            kwargs.update(appended_data=data)
    if LEARNERS[agent.algo].online_returns:
        if config.buffer_capacity < config.steps + len(kwargs.get("appended_data", {}).get("rewards", ())):
            raise UserError("Cal-QL online keeps every episode's returns: --buffer-capacity must hold all steps")
        failure = None if config.sparse_failure_reward is None else (
            config.reward_scale * config.sparse_failure_reward + config.reward_bias)
        kwargs.update(returns=(agent.config.gamma, failure, episode_limit))
    return BatchSource(**kwargs)
