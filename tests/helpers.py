"""Tiny configs and batches shared by the tests."""

import jax.numpy as jnp
import numpy as np

from wsrl.agents.sac import SACConfig

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
