import jax
import jax.numpy as jnp
import numpy as np

from wsrl.data.buffer import ReplayBuffer


def transition(i: int) -> dict:
    """A transition whose every field encodes its index i (never zero)."""
    return {"observations": jnp.full(3, i + 1.0), "actions": jnp.full(2, -(i + 1.0)),
            "rewards": jnp.asarray(10.0 * (i + 1)),
            "next_observations": jnp.full(3, i + 1.5), "masks": jnp.asarray(1.0)}


def test_buffer_returns_only_inserted_transitions_whole():
    buffer = ReplayBuffer.create(3, 2, capacity=16)
    for i in range(5):
        buffer = buffer.insert(transition(i))
    assert int(buffer.size) == 5
    batch = jax.tree.map(np.asarray, buffer.sample(jax.random.PRNGKey(0), 500))
    ids = batch["observations"][:, 0] - 1
    assert set(ids.astype(int)) == set(range(5))  # uniform over all five, and nothing else (no empty slots)
    np.testing.assert_array_equal(batch["actions"][:, 0], -(ids + 1))
    np.testing.assert_array_equal(batch["rewards"], 10 * (ids + 1))
    np.testing.assert_array_equal(batch["next_observations"][:, 0], ids + 1.5)


def test_full_buffer_overwrites_the_oldest_transitions():
    buffer = ReplayBuffer.create(3, 2, capacity=4)
    insert = jax.jit(lambda b, t: b.insert(t))
    for i in range(7):
        buffer = insert(buffer, transition(i))
    assert int(buffer.size) == 4
    ids = np.asarray(buffer.sample(jax.random.PRNGKey(1), 400)["observations"][:, 0]) - 1
    assert set(ids.astype(int)) == {3, 4, 5, 6}
