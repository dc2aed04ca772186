"""Offline datasets as `Transitions`: episode alignment, reward transform, Monte-Carlo return-to-go (docs/method.md §7).

The reward scale/bias of a preset is applied here and only here for datasets (`from_episodes`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from wsrl.errors import UserError


@dataclass(frozen=True)
class Episode:
    """One episode: observations of length T+1, everything else of length T."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class Transitions:
    """Struct of arrays of (s, a, r, s', mask, done, return-to-go); mask = 0 only at true terminals."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    masks: np.ndarray
    dones: np.ndarray
    mc_returns: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def return_to_go(rewards: np.ndarray, gamma: float, sparse_failure_reward: float | None = None) -> np.ndarray:
    """Discounted sum of future rewards within one episode, tail value 0 (docs/method.md §4, Cal-QL).

    On sparse-reward tasks an episode whose every reward is the failure reward never succeeded:
    it gets failure_reward / (1 - gamma) at every step, the value of failing forever.
    """
    if sparse_failure_reward is not None and np.all(rewards == sparse_failure_reward):
        return np.full(len(rewards), sparse_failure_reward / (1.0 - gamma), np.float32)
    out = np.zeros(len(rewards), np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out.astype(np.float32)


def check_layout(episodes: list[Episode], source: str) -> None:
    """Refuse episodes whose arrays do not fit together (read from a damaged or foreign file): observations T+1 x d,
    actions T x a, rewards, terminations and truncations of length T, the same d and a in every episode."""
    dims: tuple[int, int] | None = None
    for i, ep in enumerate(episodes):
        problem = None
        if ep.observations.ndim != 2 or ep.actions.ndim != 2:
            problem = (f"observations of shape {ep.observations.shape} and actions of shape {ep.actions.shape} "
                       "(need 2-D arrays)")
        elif len(ep.observations) != len(ep) + 1:
            problem = f"{len(ep.observations)} observations for {len(ep)} actions (need T+1)"
        elif any(x.shape != (len(ep),) for x in (ep.rewards, ep.terminations, ep.truncations)):
            problem = (f"{len(ep)} actions but rewards / terminations / truncations of lengths {len(ep.rewards)} / "
                       f"{len(ep.terminations)} / {len(ep.truncations)}")
        elif dims is not None and (ep.observations.shape[1], ep.actions.shape[1]) != dims:
            problem = (f"observation/action dims {ep.observations.shape[1]}/{ep.actions.shape[1]}, the first episode "
                       f"{dims[0]}/{dims[1]}")
        if problem:
            raise UserError(f"{source}: episode {i} has {problem}; the file is damaged or not in the expected layout")
        dims = dims or (ep.observations.shape[1], ep.actions.shape[1])


def from_episodes(episodes: list[Episode], reward_scale: float = 1.0, reward_bias: float = 0.0, gamma: float = 0.99,
                  sparse_failure_reward: float | None = None, action_limit: float | None = None,
                  source: str = "dataset") -> Transitions:
    """Concatenate episodes into transitions, never pairing observations across an episode boundary.

    Rewards become scale * r + bias; `sparse_failure_reward` is in those transformed units.
    """
    episodes = [e for e in episodes if len(e) > 0]
    if not episodes:
        raise UserError(f"{source} holds no transitions; collect or choose a non-empty dataset")
    parts: dict[str, list[np.ndarray]] = {f.name: [] for f in fields(Transitions)}
    for ep in episodes:
        rewards = (reward_scale * ep.rewards.astype(np.float64) + reward_bias).astype(np.float32)
        dones = np.logical_or(ep.terminations, ep.truncations)
        dones[-1] = True
        parts["observations"].append(ep.observations[:-1])
        parts["next_observations"].append(ep.observations[1:])
        parts["actions"].append(ep.actions)
        parts["rewards"].append(rewards)
        parts["masks"].append(1.0 - ep.terminations.astype(np.float32))
        parts["dones"].append(dones.astype(np.float32))
        parts["mc_returns"].append(return_to_go(rewards, gamma, sparse_failure_reward))
    arrays = {k: np.concatenate(v).astype(np.float32) for k, v in parts.items()}
    arrays["observations"] = arrays["observations"].reshape(len(arrays["rewards"]), -1)
    arrays["next_observations"] = arrays["next_observations"].reshape(len(arrays["rewards"]), -1)
    arrays["actions"] = arrays["actions"].reshape(len(arrays["rewards"]), -1)
    for name, values in arrays.items():
        if not np.all(np.isfinite(values)):
            raise UserError(f"{source}: {name} contains NaN or inf values; clean or regenerate the dataset")
    if action_limit is not None:
        arrays["actions"] = np.clip(arrays["actions"], -action_limit, action_limit)
    return Transitions(**arrays)
