import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpy_ref
import pytest
from helpers import ACTION_DIM, OBS_DIM, random_batch

from wsrl.agents.iql import IQLAgent, awr_weights, expectile_loss
from wsrl.config import IQLConfig

TINY_IQL = IQLConfig(actor_hidden_dims=(8,), critic_hidden_dims=(8, 8), batch_size=6, expectile=0.8,
                     awr_temperature=2.0)


def host(tree):
    return jax.tree.map(np.asarray, tree)


def mlp(params, x):
    """Dense -> ReLU hidden layers (no LayerNorm), flax parameter layout."""
    for i in range(len(params)):
        x = np.maximum(x @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"], 0)
    return x


def numpy_v(params, obs):
    return (mlp(params["MLP_0"], obs) @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])[:, 0]


def test_expectile_loss_and_awr_weights_match_numpy():
    diff = np.array([-2.0, -0.5, 0.0, 0.3, 4.0], np.float32)
    expected = np.mean(np.where(diff < 0, 0.2, 0.8) * diff**2)
    np.testing.assert_allclose(expectile_loss(jnp.asarray(diff), 0.8), expected, rtol=1e-6)
    q, v = np.array([1.0, 5.0, -3.0, 100.0]), np.array([0.5, 5.0, 0.0, 0.0])
    np.testing.assert_allclose(awr_weights(jnp.asarray(q), jnp.asarray(v), 2.0),
                               np.minimum(np.exp(2.0 * (q - v)), 100.0), rtol=1e-5)


def test_iql_losses_match_numpy():
    agent = IQLAgent.create(TINY_IQL, OBS_DIM, ACTION_DIM, seed=0)
    agent = agent.replace(critic=agent.critic.replace(
        target_params=jax.tree.map(lambda p: p * 1.1 + 0.01, agent.critic.params)))
    batch = random_batch(6)
    b = host(batch)
    q_target = numpy_ref.critic_ensemble(host(agent.critic.target_params), b["observations"], b["actions"],
                                         layer_norm_on=False).min(0)
    v = numpy_v(host(agent.value.params), b["observations"])

    value_loss, _ = agent.value_loss(agent.value.params, batch)
    np.testing.assert_allclose(value_loss, np.mean(np.where(q_target - v < 0, 0.2, 0.8) * (q_target - v) ** 2),
                               rtol=1e-4)

    critic_loss, _ = agent.critic_loss(agent.critic.params, batch)
    target = b["rewards"] + 0.99 * b["masks"] * numpy_v(host(agent.value.params), b["next_observations"])
    q = numpy_ref.critic_ensemble(host(agent.critic.params), b["observations"], b["actions"], layer_norm_on=False)
    np.testing.assert_allclose(critic_loss, np.mean((q - target) ** 2), rtol=1e-4)

    actor_loss, _ = agent.actor_loss(agent.actor.params, batch, jax.random.PRNGKey(0))
    p = host(agent.actor.params)
    mean = mlp(p["MLP_0"], b["observations"]) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]  # no tanh
    std = np.clip(np.exp(p["log_std"]), 1e-5, 10.0)
    log_prob = np.sum(-0.5 * ((b["actions"] - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), -1)
    weights = np.minimum(np.exp(2.0 * (q_target - v)), 100.0)
    np.testing.assert_allclose(actor_loss, -np.mean(weights * log_prob), rtol=1e-4)


def test_iql_update_steps_every_network_and_dropout_only_in_training():
    config = IQLConfig(actor_hidden_dims=(8,), critic_hidden_dims=(8,), batch_size=6, actor_dropout=0.5)
    agent = IQLAgent.create(config, OBS_DIM, ACTION_DIM, seed=0)
    new, metrics = jax.jit(lambda a, b: a.update(b))(agent, random_batch(6))
    assert all(int(getattr(new, n).step) == 1 for n in ("actor", "critic", "value"))
    assert {"value_loss", "critic_loss", "actor_loss", "awr_weight_mean"} <= set(metrics)
    obs = random_batch(6)["observations"]
    np.testing.assert_array_equal(agent.eval_actions(obs), agent.eval_actions(obs))  # deterministic at eval


@pytest.mark.parametrize("step_all", [True, False])
def test_critics_regress_to_the_value_before_its_step_only_with_step_all_optimizers(step_all):
    """The reference code takes every gradient at the same parameters; the clean variant reads the new V."""
    agent = IQLAgent.create(dataclasses.replace(TINY_IQL, step_all_optimizers=step_all), OBS_DIM, ACTION_DIM, 0)
    batch = random_batch(6)
    new, _ = jax.jit(lambda a, b: a.update(b))(agent, batch)
    judge = agent if step_all else agent.replace(value=new.value)
    grads, _ = jax.grad(judge.critic_loss, has_aux=True)(agent.critic.params, batch)
    for got, want in zip(jax.tree.leaves(new.critic.params),
                         jax.tree.leaves(agent.critic.apply_gradients(grads).params), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
