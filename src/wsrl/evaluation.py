"""Deterministic evaluation rollouts, normalised score and success rate (docs/method.md §6)."""

from __future__ import annotations

import gymnasium as gym
import jax
import numpy as np

from wsrl import checkpoint
from wsrl.agents import agent_from_meta
from wsrl.deploy import EVAL_ACTION_LIMIT  # one constant for evaluation, the API and deployment
from wsrl.envs import binary_rewards, make_env, normalized_score, space_dims, success_flag


@jax.jit
def eval_action(agent, obs):
    """The deterministic evaluation action of one observation."""
    return agent.eval_actions(obs[None])[0]


def evaluate(agent, env: gym.Env, episodes: int, seed: int, env_id: str,
             reference: tuple[float, float] | None = None, guide=None, guide_steps: int = 0) -> dict[str, float]:
    """Run `episodes` episodes of tanh(mean) actions (clipped to +-0.99999) on the unscaled-reward env.

    No normalised score on a binary-reward env: the reference returns are of the task's own rewards.
    Episode i starts from reset(seed=seed + i), so every evaluation of a run sees the same start states.
    With a `guide` (JSRL), the guide's deterministic actions are taken for the first `guide_steps` steps.
    """
    return run_episodes(lambda obs, t: eval_action(guide if t < guide_steps else agent, obs), env, episodes, seed,
                        env_id, reference)


def run_episodes(act, env: gym.Env, episodes: int, seed: int, env_id: str,
                 reference: tuple[float, float] | None = None) -> dict[str, float]:
    """`episodes` episodes of `act(observation, step_in_episode)` (actions in [-1, 1], clipped to +-0.99999):
    mean return, its std, mean length, and the normalised score and success rate where the task has them."""
    returns, lengths, successes = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, length, success, done = 0.0, 0, None, False
        while not done:
            action = np.clip(np.asarray(act(obs, length)), -EVAL_ACTION_LIMIT, EVAL_ACTION_LIMIT)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            flag = success_flag(info)
            if flag is not None:
                success = bool(success) or bool(flag)
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
        if success is not None:
            successes.append(float(success))
    result = {"eval_return": float(np.mean(returns)), "eval_return_std": float(np.std(returns)),
              "eval_length": float(np.mean(lengths))}
    score = None if binary_rewards(env) else normalized_score(env_id, result["eval_return"], reference)
    if score is not None:
        result["eval_normalized_score"] = score
    if successes:
        result["eval_success"] = float(np.mean(successes))
    return result


def evaluate_checkpoint(path: str, env_id: str | None, episodes: int, seed: int) -> dict[str, float | str]:
    """Evaluate the checkpoint at `path` (run or checkpoint directory) on `env_id` or its own env."""
    env_id = env_id or checkpoint.load_meta(checkpoint.resolve(path))["env"]
    env = make_env(env_id)
    directory, meta = checkpoint.load_for_env(path, *space_dims(env), env_id)
    agent = checkpoint.restore(agent_from_meta(meta), directory)
    result = evaluate(agent, env, episodes, seed, env_id)
    env.close()
    return {"checkpoint": str(directory), "env": env_id, **result}
