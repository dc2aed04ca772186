"""`wsrl collect`: make offline datasets in the Minari format with a recipe (random, policy rollouts).

A dataset is written under a temporary Minari root and moved into place when complete, so an interrupted
collection leaves no dataset behind.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gymnasium as gym
import jax
import numpy as np

from wsrl import __version__
from wsrl.data.loaders import find_minari, minari_root
from wsrl.envs import REFERENCE_SCORES, make_env, success_flag, task_family
from wsrl.errors import UserError
from wsrl.logging import ProgressBar

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CollectConfig:
    """What to collect, how, and how much."""

    env: str = "Hopper-v5"
    """Gymnasium environment id to collect in."""
    recipe: Literal["random", "policy"] = "random"
    """random: uniform actions; policy: rollouts of a saved wsrl checkpoint (--from)."""
    steps: int = 100_000
    """Environment steps to record."""
    seed: int = 0
    """Seed of the environment and of the actions: the same seed gives the same dataset."""
    action_noise: float = 0.0
    """policy recipe: std of Gaussian noise added to the deterministic action."""
    epsilon: float = 0.0
    """policy recipe: probability of replacing the action by a uniform random one."""

    def validate(self, from_path: str | None) -> None:
        if self.steps < 1:
            raise UserError(f"--steps must be a positive integer, got {self.steps}")
        if not 0.0 <= self.epsilon <= 1.0 or self.action_noise < 0:
            raise UserError("--epsilon must be in [0, 1] and --action-noise >= 0")
        if self.recipe == "policy" and from_path is None:
            raise UserError("the policy recipe needs --from RUN_OR_CHECKPOINT (a policy to roll out)")


def checkpoint_policy(path: str, env: gym.Env, rng: np.random.Generator, action_noise: float,
                      epsilon: float) -> Policy:
    """Deterministic actions of a checkpoint, with optional Gaussian noise and epsilon-uniform mixing."""
    from wsrl import checkpoint
    from wsrl.agents import agent_from_meta
    from wsrl.envs import space_dims

    directory = checkpoint.resolve(path)
    meta = checkpoint.load_meta(directory)
    if (meta["obs_dim"], meta["action_dim"]) != space_dims(env):
        raise UserError(f"checkpoint {directory} has observation/action dims {meta['obs_dim']}/{meta['action_dim']}, "
                        f"the env has {space_dims(env)[0]}/{space_dims(env)[1]}; use the env it was trained on")
    agent = checkpoint.restore(agent_from_meta(meta), directory)
    act = jax.jit(lambda a, o: a.eval_actions(o[None])[0])

    def policy(obs: np.ndarray) -> np.ndarray:
        action = np.asarray(act(agent, obs))
        if action_noise > 0:
            action = action + action_noise * rng.standard_normal(action.shape)
        if epsilon > 0 and rng.random() < epsilon:
            action = rng.uniform(-1.0, 1.0, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return policy


def rollouts(env: gym.Env, policy: Policy, steps: int, seed: int, label: str) -> list[dict[str, np.ndarray]]:
    """Episodes of `policy` for exactly `steps` env steps; the last one is cut (truncated) at the budget."""
    episodes, obs_list, actions, rewards, terms, truncs, successes = [], [], [], [], [], [], []
    obs, _ = env.reset(seed=seed)
    obs_list.append(obs)
    with ProgressBar(steps, label) as progress:
        for step in range(1, steps + 1):
            action = policy(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            truncated = truncated or step == steps
            obs_list.append(obs)
            actions.append(action)
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated and not terminated)
            successes.append(success_flag(info))
            if terminated or truncated:
                episode = {"observations": np.asarray(obs_list, np.float32), "actions": np.asarray(actions, np.float32),
                           "rewards": np.asarray(rewards, np.float64), "terminations": np.asarray(terms),
                           "truncations": np.asarray(truncs)}
                if successes[0] is not None:  # Minari infos hold the reset's entry and then one per step
                    episode["success"] = np.asarray([False, *map(bool, successes)])
                episodes.append(episode)
                obs_list, actions, rewards, terms, truncs, successes = [], [], [], [], [], []
                if step < steps:
                    obs, _ = env.reset()
                    obs_list.append(obs)
            progress.advance(step)
    return episodes


def write_minari(dataset_id: str, episodes: list[dict[str, np.ndarray]], env: gym.Env, env_id: str,
                 description: dict, overwrite: bool) -> Path:
    """Write `episodes` as Minari dataset `dataset_id` in the Minari root, atomically.

    Actions are stored in the env's own units (as Minari's recover_environment expects); the agents' [-1, 1]
    actions are mapped back by the loader.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    root = minari_root()
    target = root / dataset_id
    tmp_root = root / f".wsrl-tmp-{os.getpid()}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    native = env.unwrapped.action_space
    to_native = lambda a: native.low + (a + 1.0) * 0.5 * (native.high - native.low)  # noqa: E731
    buffers = [EpisodeBuffer(id=i, observations=e["observations"], actions=to_native(e["actions"]).astype(np.float32),
                             rewards=list(e["rewards"]),
                             terminations=list(e["terminations"]), truncations=list(e["truncations"]),
                             infos={"success": e["success"]} if "success" in e else {})
               for i, e in enumerate(episodes)]
    family = task_family(env_id)
    reference = REFERENCE_SCORES.get(family) if family else None
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_root)
    try:
        with warnings.catch_warnings():  # minari asks for author / permalink metadata we do not have
            warnings.simplefilter("ignore")
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env_id, eval_env=env_id, algorithm_name=f"wsrl {description['recipe']}",
                observation_space=env.observation_space, action_space=native,
                ref_min_score=reference[0] if reference else None, ref_max_score=reference[1] if reference else None,
                description=json.dumps(description))
        if target.exists() and overwrite:
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / dataset_id, target)
    except ValueError as e:
        raise UserError(f"cannot write Minari dataset {dataset_id!r}: {e}") from None
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target


def collect(config: CollectConfig, dataset_id: str, from_path: str | None = None, overwrite: bool = False) -> Path:
    """Run the recipe and write the dataset; returns its directory."""
    config.validate(from_path)
    if find_minari(dataset_id) is not None and not overwrite:
        raise UserError(f"dataset {dataset_id!r} already exists in {minari_root()}; pass --overwrite to replace it")
    env = make_env(config.env)
    env.action_space.seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.recipe == "random":
        policy: Policy = lambda obs: rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)  # noqa: E731
    else:
        policy = checkpoint_policy(from_path, env, rng, config.action_noise, config.epsilon)
    episodes = rollouts(env, policy, config.steps, config.seed, f"collect {config.recipe}")
    description = {"recipe": config.recipe, "seed": config.seed, "steps": config.steps, "policy": from_path,
                   "action_noise": config.action_noise, "epsilon": config.epsilon, "wsrl_version": __version__}
    return write_minari(dataset_id, episodes, env, config.env, description, overwrite)
