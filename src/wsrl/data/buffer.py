"""Replay buffer held as device arrays, so that inserting and sampling happen inside jitted calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

FIELDS = ("observations", "actions", "rewards", "next_observations", "masks")


class ReplayBuffer(struct.PyTreeNode):
    """Fixed-capacity ring buffer of transitions (observations, actions, rewards, next_observations, masks)."""

    data: dict[str, jax.Array]
    size: jax.Array
    pointer: jax.Array

    @classmethod
    def create(cls, obs_dim: int, action_dim: int, capacity: int) -> ReplayBuffer:
        shapes = {"observations": (obs_dim,), "actions": (action_dim,), "rewards": (),
                  "next_observations": (obs_dim,), "masks": ()}
        data = {k: jnp.zeros((capacity, *shape), jnp.float32) for k, shape in shapes.items()}
        return cls(data=data, size=jnp.zeros((), jnp.int32), pointer=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return self.data["rewards"].shape[0]

    def insert(self, transition: dict[str, jax.Array]) -> ReplayBuffer:
        """Write one transition at the pointer, overwriting the oldest one when full."""
        data = {k: v.at[self.pointer].set(jnp.asarray(transition[k], v.dtype)) for k, v in self.data.items()}
        return self.replace(data=data, size=jnp.minimum(self.size + 1, self.capacity),
                            pointer=(self.pointer + 1) % self.capacity)

    def transitions(self) -> dict[str, np.ndarray]:
        """The stored transitions on the host, oldest first."""
        size, pointer = int(self.size), int(self.pointer)
        order = np.arange(size) if size < self.capacity else (np.arange(size) + pointer) % self.capacity
        return {k: np.asarray(v)[order] for k, v in self.data.items()}

    def sample(self, key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        """Uniform sample with replacement among the inserted transitions."""
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(self.size, 1))
        return {k: v[idx] for k, v in self.data.items()}
