import jax
import numpy as np
import pytest
from helpers import ACTION_DIM, OBS_DIM, TINY, random_batch

from wsrl import checkpoint
from wsrl.agents.sac import SACAgent, update
from wsrl.errors import UserError


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def test_save_load_restores_actions_optimiser_moments_and_next_update(tmp_path):
    batch = random_batch(TINY.utd * TINY.batch_size)
    agent, _ = update(SACAgent.create(TINY, OBS_DIM, ACTION_DIM, seed=0), batch)
    agent, _ = update(agent, batch)
    checkpoint.save(agent, tmp_path / "ckpt", {"obs_dim": OBS_DIM, "action_dim": ACTION_DIM})

    template = SACAgent.create(TINY, OBS_DIM, ACTION_DIM, seed=123)
    restored = checkpoint.restore(template, checkpoint.resolve(tmp_path / "ckpt"))
    assert leaves_equal(restored, agent)
    assert leaves_equal(restored.critic.opt_state, agent.critic.opt_state)  # Adam moments and count
    assert not leaves_equal(template.critic.opt_state, agent.critic.opt_state)

    obs = batch["observations"][:4]
    np.testing.assert_array_equal(restored.sample_actions(obs)[1], agent.sample_actions(obs)[1])
    np.testing.assert_array_equal(restored.eval_actions(obs), agent.eval_actions(obs))
    next_a, metrics_a = update(agent, batch)
    next_b, metrics_b = update(restored, batch)
    assert leaves_equal(next_a, next_b)
    assert {k: float(v) for k, v in metrics_a.items()} == {k: float(v) for k, v in metrics_b.items()}


def test_restore_rejects_a_checkpoint_of_other_shapes(tmp_path):
    agent = SACAgent.create(TINY, OBS_DIM, ACTION_DIM, seed=0)
    checkpoint.save(agent, tmp_path / "ckpt", {})
    other = SACAgent.create(TINY, OBS_DIM + 1, ACTION_DIM, seed=0)
    with pytest.raises(UserError, match="does not fit"):
        checkpoint.restore(other, tmp_path / "ckpt")


def test_resolve_picks_the_newest_checkpoint_of_a_run_and_rejects_other_paths(tmp_path):
    agent = SACAgent.create(TINY, OBS_DIM, ACTION_DIM, seed=0)
    for step in (100, 2000, 300):
        checkpoint.save(agent, tmp_path / "run" / "checkpoints" / f"step_{step}", {})
    assert checkpoint.resolve(tmp_path / "run").name == "step_2000"
    with pytest.raises(UserError, match="no such file"):
        checkpoint.resolve(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a wsrl checkpoint"):
        checkpoint.resolve(tmp_path / "empty")
    (tmp_path / "run" / "checkpoints" / "step_2000" / "agent.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="corrupt"):
        checkpoint.restore(agent, tmp_path / "run" / "checkpoints" / "step_2000")
