"""Adroit datasets rebuilt from the DAPG release (github.com/aravindr93/hand_dapg): replayed human demonstrations,
rollouts of the DAPG expert policies, and the paper's binary datasets (docs/reproduce.md §6).

The binary recipe follows Cal-QL's loader (nakamotoo/Cal-QL, `get_hand_dataset_with_mc_calculation`), whose data is
AWAC's: human demonstrations plus rollouts of a policy behaviour-cloned on them, only episodes that reach the goal,
each cut after its last success. Rewards stay the env's; `--preset adroit` turns the stored success flags into the
binary -1 / 0 reward and ends each piece at a success step when it reads the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsrl.collect.dapg import DapgPolicy, read_demos, read_policy
from wsrl.envs import success_flag, task_family
from wsrl.errors import UserError
from wsrl.runlog import ProgressBar

ADROIT_TASKS = ("pen", "door", "relocate", "hammer")


def adroit_task(env_id: str) -> str:
    task = task_family(env_id)
    if task not in ADROIT_TASKS:
        raise UserError(f"{env_id!r} is not an Adroit env; the DAPG recipes need AdroitHand{{Pen,Door,Relocate,"
                        "Hammer}-v1")
    return task


def release_file(release: str | Path, kind: str, task: str) -> Path:
    """`dapg/policies/TASK-v0.pickle` (kind "policy") or `dapg/demonstrations/TASK-v0_demos.pickle` ("demos") of
    a hand_dapg checkout, or `release` itself when it is a file."""
    root = Path(release)
    if root.is_file():
        return root
    name = f"policies/{task}-v0.pickle" if kind == "policy" else f"demonstrations/{task}-v0_demos.pickle"
    for candidate in (root / "dapg" / name, root / name):
        if candidate.is_file():
            return candidate
    raise UserError(f"{root} holds no dapg/{name}; pass a checkout of github.com/aravindr93/hand_dapg (or the file)")


def _episode(observations: list, actions: list, rewards: list, successes: list, truncated: bool) -> dict:
    return {"observations": np.asarray(observations, np.float32), "actions": np.asarray(actions, np.float32),
            "rewards": np.asarray(rewards, np.float64), "terminations": np.zeros(len(actions), bool),
            "truncations": np.eye(len(actions), dtype=bool)[-1] & truncated,
            "success": np.asarray([False, *successes], bool)}  # Minari's infos hold the reset's entry first


def replay_demos(env: gym.Env, demos: list[dict[str, Any]]) -> tuple[list[dict], float]:
    """Each demonstration replayed in `env` from its recorded start state: observations, rewards and success flags
    are the env's own; actions are clipped to [-1, 1] as the env applies them (the recordings reach about 1.37).
    Also returns the largest gap between a replayed and a recorded observation."""
    episodes, gap = [], 0.0
    for demo in demos:
        obs, _ = env.reset(options={"initial_state_dict": demo["init_state_dict"]})
        observations, actions, rewards, successes = [obs], [], [], []
        for recorded, action in zip(demo["observations"], demo["actions"], strict=True):
            gap = max(gap, float(np.abs(np.asarray(recorded) - observations[-1]).max()))
            action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
            obs, reward, terminated, _, info = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            successes.append(bool(success_flag(info)))
            if terminated:
                break
        episodes.append(_episode(observations, actions, rewards, successes, truncated=True))
    return episodes, gap


def policy_rollouts(env: gym.Env, act: Any, episodes: int, seed: int, label: str) -> list[dict]:
    """`episodes` whole episodes of `act(obs)` (clipped to [-1, 1]), each to the env's time limit."""
    out = []
    obs, _ = env.reset(seed=seed)
    with ProgressBar(episodes, label) as progress:
        for i in range(episodes):
            observations, actions, rewards, successes, done = [obs], [], [], [], False
            while not done:
                action = np.clip(act(obs), -1.0, 1.0).astype(np.float32)
                obs, reward, terminated, truncated, info = env.step(action)
                observations.append(obs)
                actions.append(action)
                rewards.append(reward)
                successes.append(bool(success_flag(info)))
                done = terminated or truncated
            out.append(_episode(observations, actions, rewards, successes, truncated=not terminated))
            obs, _ = env.reset()
            progress.advance(i + 1)
    return out


def dapg_sampler(policy: DapgPolicy, env: gym.Env, rng: np.random.Generator):
    """The DAPG policy's sampled actions (as D4RL's expert datasets were rolled out)."""
    if policy.obs_dim != env.observation_space.shape[0] or policy.act_dim != env.action_space.shape[0]:
        raise UserError(f"the DAPG policy maps {policy.obs_dim} observations to {policy.act_dim} actions; the env "
                        f"has {env.observation_space.shape[0]} and {env.action_space.shape[0]}: wrong task's file")
    return lambda obs: policy.sample(obs, rng)


class _BCNet(nn.Module):
    act_dim: int
    hidden: tuple[int, ...] = (256, 256)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        h = obs
        for width in self.hidden:
            h = nn.relu(nn.Dense(width)(h))
        return nn.Dense(self.act_dim)(h)


BC_STEPS, BC_BATCH, BC_LR = 10_000, 256, 1e-3


def behaviour_clone(observations: np.ndarray, actions: np.ndarray, seed: int):
    """A Gaussian policy fit by maximum likelihood to (observation, action) pairs: an MLP mean (2 x 256, ReLU) and a
    state-independent log-std, Adam for BC_STEPS minibatches. Returns a sampler `act(obs, rng)`."""
    obs_mean, obs_std = observations.mean(0), observations.std(0) + 1e-6
    x, y = jnp.asarray((observations - obs_mean) / obs_std), jnp.asarray(actions)
    net = _BCNet(actions.shape[1])
    key, init_key = jax.random.split(jax.random.PRNGKey(seed))
    params = {"net": net.init(init_key, x[:1]), "log_std": jnp.full(actions.shape[1], -1.0)}
    optimiser = optax.adam(BC_LR)

    def nll(p, xb, yb):
        z = (yb - net.apply(p["net"], xb)) * jnp.exp(-p["log_std"])
        return jnp.mean(0.5 * jnp.sum(z ** 2, -1) + jnp.sum(p["log_std"]))

    @jax.jit
    def step(carry, k):
        p, opt = carry
        idx = jax.random.randint(k, (BC_BATCH,), 0, len(x))
        grads = jax.grad(nll)(p, x[idx], y[idx])
        updates, opt = optimiser.update(grads, opt, p)
        return (optax.apply_updates(p, updates), opt), None

    (params, _), _ = jax.lax.scan(step, (params, optimiser.init(params)), jax.random.split(key, BC_STEPS))
    mean = jax.jit(lambda o: net.apply(params["net"], (o - obs_mean) / obs_std))
    std = np.exp(np.asarray(params["log_std"], np.float64))
    return lambda obs, rng: np.asarray(mean(obs), np.float64) + std * rng.standard_normal(std.shape)


def cut_after_last_success(episode: dict) -> dict | None:
    """Cal-QL's rule for the binary datasets: drop an episode that never reaches the goal, and cut the others after
    their last success step (the cut recorded as a truncation)."""
    hits = np.flatnonzero(episode["success"][1:])
    if len(hits) == 0:
        return None
    end = int(hits[-1]) + 1
    cut = {k: episode[k][:end] for k in ("actions", "rewards", "terminations")}
    cut["truncations"] = np.eye(end, dtype=bool)[-1] & ~cut["terminations"]
    return {**cut, "observations": episode["observations"][:end + 1], "success": episode["success"][:end + 1]}


def adroit_binary(env: gym.Env, release: str | Path, task: str, bc_episodes: int, seed: int) -> tuple[list, dict]:
    """Human demonstrations (door: the release's 25; pen, relocate, hammer, whose demonstrations the release does not
    hold: 25 sampled episodes of the DAPG expert policy stand in) plus `bc_episodes` sampled episodes of a policy
    behaviour-cloned on them; only successful episodes, each cut after its last success."""
    rng = np.random.default_rng(seed)
    try:
        demos_file = release_file(release, "demos", task)
    except UserError:
        demos_file = None
    if demos_file is not None:
        demos, gap = replay_demos(env, read_demos(demos_file))
        source = {"demonstrations": str(demos_file), "replay_max_observation_gap": gap}
    else:
        policy_file = release_file(release, "policy", task)
        demos = policy_rollouts(env, dapg_sampler(read_policy(policy_file), env, rng), DEMO_STAND_IN, seed,
                                "stand-in demonstrations")
        source = {"demonstrations": f"{DEMO_STAND_IN} sampled episodes of {policy_file} (stand-in)"}
    observations = np.concatenate([d["observations"][:-1] for d in demos])
    actions = np.concatenate([d["actions"] for d in demos])
    bc = behaviour_clone(observations, actions, seed)
    rollouts = policy_rollouts(env, lambda obs: bc(obs, rng), bc_episodes, seed + 1, "behaviour-cloned rollouts")
    kept = {name: [c for e in group if (c := cut_after_last_success(e)) is not None]
            for name, group in (("demonstrations", demos), ("bc", rollouts))}
    success = lambda group: float(np.mean([e["success"].any() for e in group]))  # noqa: E731
    summary = {**source, "demo_episodes": len(demos), "demo_success": success(demos),
               "bc_episodes": bc_episodes, "bc_success": success(rollouts),
               "kept_demo_episodes": len(kept["demonstrations"]), "kept_bc_episodes": len(kept["bc"])}
    return kept["demonstrations"] + kept["bc"], summary


DEMO_STAND_IN = 25
