"""Tiny configs and batches shared by the tests."""

import jax.numpy as jnp
import numpy as np

from wsrl.config import SACConfig

TINY = SACConfig(actor_hidden_dims=(8,), critic_hidden_dims=(8, 8), num_critics=4, critic_subset=2,
                 batch_size=5, utd=2)
OBS_DIM, ACTION_DIM = 3, 2


def random_batch(size: int, seed: int = 0, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM) -> dict:
    rng = np.random.default_rng(seed)
    return {"observations": jnp.asarray(rng.normal(size=(size, obs_dim)), jnp.float32),
            "actions": jnp.asarray(rng.uniform(-0.9, 0.9, (size, action_dim)), jnp.float32),
            "rewards": jnp.asarray(rng.normal(size=size), jnp.float32),
            "next_observations": jnp.asarray(rng.normal(size=(size, obs_dim)), jnp.float32),
            "masks": jnp.asarray(rng.integers(0, 2, size), jnp.float32)}


def minari_collector_dataset(dataset_id: str, steps: int, env_id: str = "Hopper-v5") -> None:
    """Random-action episodes written by Minari's own DataCollector into $MINARI_DATASETS_PATH."""
    import warnings

    import gymnasium as gym
    import minari

    env = minari.DataCollector(gym.make(env_id))
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    with warnings.catch_warnings():  # minari asks for author / permalink metadata
        warnings.simplefilter("ignore")
        env.create_dataset(dataset_id=dataset_id, algorithm_name="random")
