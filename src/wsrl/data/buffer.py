"""Replay buffer held as device arrays, so that inserting and sampling happen inside jitted calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

FIELDS = ("observations", "actions", "rewards", "next_observations", "masks", "mc_returns")


class ReplayBuffer(struct.PyTreeNode):
    """Fixed-capacity ring buffer of transitions: observations, actions, rewards, next_observations, masks,
    and mc_returns (Monte-Carlo return-to-go, filled in when an episode ends, for Cal-QL online)."""

    data: dict[str, jax.Array]
    size: jax.Array
    pointer: jax.Array

    @classmethod
    def create(cls, obs_dim: int, action_dim: int, capacity: int) -> ReplayBuffer:
        shapes = {"observations": (obs_dim,), "actions": (action_dim,), "rewards": (),
                  "next_observations": (obs_dim,), "masks": (), "mc_returns": ()}
        data = {k: jnp.zeros((capacity, *shape), jnp.float32) for k, shape in shapes.items()}
        return cls(data=data, size=jnp.zeros((), jnp.int32), pointer=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return self.data["rewards"].shape[0]

    def insert(self, transition: dict[str, jax.Array]) -> ReplayBuffer:
        """Write one transition at the pointer, overwriting the oldest one when full."""
        data = {k: v.at[self.pointer].set(jnp.asarray(transition.get(k, 0.0), v.dtype)) for k, v in self.data.items()}
        return self.replace(data=data, size=jnp.minimum(self.size + 1, self.capacity),
                            pointer=(self.pointer + 1) % self.capacity)

    def extend(self, arrays: dict[str, np.ndarray]) -> ReplayBuffer:
        """Append many transitions at once (retention by appending offline data)."""
        n = len(arrays["rewards"])
        if self.size + n > self.capacity:
            raise ValueError(f"{n} transitions do not fit a buffer of capacity {self.capacity}")
        idx = (self.pointer + jnp.arange(n)) % self.capacity
        data = {k: v.at[idx].set(jnp.asarray(arrays[k] if k in arrays else np.zeros(n), v.dtype).reshape(
                    n, *v.shape[1:])) for k, v in self.data.items()}
        return self.replace(data=data, size=self.size + n, pointer=(self.pointer + n) % self.capacity)

    def transitions(self) -> dict[str, np.ndarray]:
        """The stored transitions on the host, oldest first."""
        size, pointer = int(self.size), int(self.pointer)
        order = np.arange(size) if size < self.capacity else (np.arange(size) + pointer) % self.capacity
        return {k: np.asarray(v)[order] for k, v in self.data.items()}

    def rows(self) -> dict[str, np.ndarray]:
        """The filled rows in storage order plus the ring pointer: what a checkpoint keeps."""
        size = int(self.size)
        return {**{k: np.asarray(v[:size]) for k, v in self.data.items()}, "pointer": np.asarray(self.pointer)}

    def with_rows(self, rows: dict[str, np.ndarray]) -> ReplayBuffer:
        """This (empty) buffer holding `rows` (from `rows()`) at the same positions.

        A buffer that is full keeps its ring pointer; one with room left (also a full one moved into a larger
        buffer, when a run's budget is extended) continues after its last row.
        """
        size = len(rows["rewards"])
        if size > self.capacity:
            raise ValueError(f"{size} stored transitions do not fit a buffer of capacity {self.capacity}")
        data = {k: v.at[:size].set(jnp.asarray(rows[k], v.dtype)) for k, v in self.data.items()}
        pointer = int(rows["pointer"]) if size == self.capacity else size
        return self.replace(data=data, size=jnp.asarray(size, jnp.int32), pointer=jnp.asarray(pointer, jnp.int32))

    def sample(self, key: jax.Array, batch_size: int, limit: jax.Array | None = None) -> dict[str, jax.Array]:
        """Uniform sample with replacement among the inserted transitions (the first `limit` ones if given)."""
        high = self.size if limit is None else limit
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(high, 1))
        return {k: v[idx] for k, v in self.data.items()}


def mixed_batch(key: jax.Array, buffer: ReplayBuffer, offline: dict[str, jax.Array] | None, minibatches: int,
                batch_size: int, offline_ratio: float, limit: jax.Array | None = None) -> dict[str, jax.Array]:
    """`minibatches` consecutive minibatches of `batch_size`, each holding exactly round(ratio * batch_size)
    uniformly sampled offline transitions and the rest online ones (RLPD-style symmetric sampling).

    The returned batch carries an `offline` column (1 for offline rows) for the offline-fraction metric.
    """
    n_offline = round(offline_ratio * batch_size) if offline is not None else 0
    n_online = batch_size - n_offline
    online_key, offline_key = jax.random.split(key)
    parts = [{**buffer.sample(online_key, minibatches * n_online, limit), "offline": jnp.zeros(minibatches * n_online)}]
    if n_offline:
        size = offline["rewards"].shape[0]
        idx = jax.random.randint(offline_key, (minibatches * n_offline,), 0, size)
        parts.append({**{k: offline[k][idx] for k in FIELDS}, "offline": jnp.ones(minibatches * n_offline)})
    per_minibatch = [jax.tree.map(lambda x: x.reshape(minibatches, -1, *x.shape[1:]), p) for p in parts]
    merged = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *per_minibatch)
    return jax.tree.map(lambda x: x.reshape(minibatches * batch_size, *x.shape[2:]), merged)
