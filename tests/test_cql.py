import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpy_ref
import pytest
from helpers import ACTION_DIM, OBS_DIM, random_batch
from scipy.special import logsumexp

from wsrl.agents.cql import CQLAgent
from wsrl.config import CQLConfig

TINY_CQL = CQLConfig(actor_hidden_dims=(8,), critic_hidden_dims=(8, 8), num_critics=4, critic_subset=2, batch_size=6,
                     cql_n_actions=3, backup_actions=3)


def host(tree):
    return jax.tree.map(np.asarray, tree)


def cql_batch(mc_return: float | None = None) -> dict:
    batch = random_batch(6, seed=3)
    mc = np.linspace(-2, 2, 6) if mc_return is None else np.full(6, mc_return)
    return {**batch, "mc_returns": jnp.asarray(mc, jnp.float32)}


def numpy_penalty(agent, batch, key, clip_uniform_too=False):
    cfg, n = agent.config, agent.config.cql_n_actions
    b = host(batch)
    rand_key, pi_key, next_key, subset_key = jax.random.split(key, 4)
    rand = np.asarray(jax.random.uniform(rand_key, (6, n, ACTION_DIM), minval=-1.0, maxval=1.0))
    samples = []
    for k, obs in ((pi_key, b["observations"]), (next_key, b["next_observations"])):
        mean, std = numpy_ref.policy(host(agent.actor.params), obs)
        eps = np.asarray(jax.random.normal(k, (6, n, ACTION_DIM)))
        samples.append(numpy_ref.tanh_gaussian(mean[:, None], std[:, None], eps))
    (pi_actions, log_pi), (next_actions, log_next) = samples
    subset = np.asarray(jax.random.randint(subset_key, (2,), 0, cfg.num_critics))
    params = host(agent.critic.params)
    obs_n = np.repeat(b["observations"][:, None], n, 1)
    q = lambda o, a: numpy_ref.critic_ensemble(params, o, a)[subset]  # noqa: E731
    q_rand, q_pi, q_next, q_data = q(obs_n, rand), q(obs_n, pi_actions), q(obs_n, next_actions), q(
        b["observations"], b["actions"])
    if cfg.calql:
        bound = b["mc_returns"][None, :, None]
        q_pi, q_next = np.maximum(q_pi, bound), np.maximum(q_next, bound)
        if clip_uniform_too:
            q_rand = np.maximum(q_rand, bound)
    if cfg.cql_importance_sample:
        terms = np.concatenate([q_rand - ACTION_DIM * np.log(0.5), q_pi - log_pi, q_next - log_next], -1)
        lse = logsumexp(terms, axis=-1)
    else:
        terms = np.concatenate([q_rand, q_data[..., None], q_pi, q_next], -1)
        lse = logsumexp(terms, axis=-1) - np.log(terms.shape[-1])
    return lse - q_data


@pytest.mark.parametrize("importance_sample", [True, False])
@pytest.mark.parametrize("calql", [False, True])
def test_cql_penalty_and_calql_bound_equal_numpy(importance_sample, calql):
    config = dataclasses.replace(TINY_CQL, cql_importance_sample=importance_sample, calql=calql)
    agent = CQLAgent.create(config, OBS_DIM, ACTION_DIM, seed=0)
    batch, key = cql_batch(), jax.random.PRNGKey(7)
    penalty = agent.cql_penalty(agent.critic.params, batch, key)
    assert penalty.shape == (2, 6)  # the two sub-sampled critics
    np.testing.assert_allclose(penalty, numpy_penalty(agent, batch, key), rtol=1e-4, atol=1e-4)


def test_calql_bound_lifts_policy_samples_but_not_uniform_ones():
    agent = CQLAgent.create(dataclasses.replace(TINY_CQL, calql=True), OBS_DIM, ACTION_DIM, seed=0)
    batch, key = cql_batch(mc_return=3.0), jax.random.PRNGKey(1)  # far above every initial Q
    penalty = np.asarray(agent.cql_penalty(agent.critic.params, batch, key))
    np.testing.assert_allclose(penalty, numpy_penalty(agent, batch, key), rtol=1e-4, atol=1e-4)
    assert not np.allclose(penalty, numpy_penalty(agent, batch, key, clip_uniform_too=True), atol=1e-3)
    cql = agent.replace(config=dataclasses.replace(agent.config, calql=False))
    assert (penalty > np.asarray(cql.cql_penalty(cql.critic.params, batch, key))).all()


def test_fixed_alpha_critic_loss_is_td_plus_alpha_times_mean_penalty():
    agent = CQLAgent.create(TINY_CQL, OBS_DIM, ACTION_DIM, seed=0)
    batch, key = cql_batch(), jax.random.PRNGKey(2)
    loss, metrics = agent.critic_loss(agent.critic.params, batch, key)
    td_key, penalty_key = jax.random.split(key)
    td, _ = super(CQLAgent, agent).critic_loss(agent.critic.params, batch, td_key)
    penalty = numpy_penalty(agent, batch, penalty_key).mean()
    np.testing.assert_allclose(metrics["td_loss"], td, rtol=1e-6)
    np.testing.assert_allclose(loss, float(td) + 5.0 * penalty, rtol=1e-4)


def test_without_ensemble_every_critic_is_penalised():
    config = dataclasses.replace(TINY_CQL, num_critics=2, critic_subset=2)
    agent = CQLAgent.create(config, OBS_DIM, ACTION_DIM, seed=0)
    assert agent.cql_penalty(agent.critic.params, cql_batch(), jax.random.PRNGKey(0)).shape == (2, 6)


@pytest.mark.parametrize("step_all, utd, steps, gap, direction", [
    (False, 1, 1, -100.0, 1), (False, 2, 2, -100.0, 1), (True, 2, 1, -100.0, 1), (True, 1, 1, -100.0, 1),
    (True, 1, 1, 100.0, -1), (False, 1, 1, 100.0, -1)])
def test_lagrange_alpha_rises_while_penalty_exceeds_the_gap(gap, direction, step_all, utd, steps):
    """The multiplier steps with each critic step, or (the reference code at high UTD) once, with the actor."""
    config = dataclasses.replace(TINY_CQL, cql_autotune=True, cql_target_action_gap=gap, step_all_optimizers=step_all,
                                 utd=utd)
    agent = CQLAgent.create(config, OBS_DIM, ACTION_DIM, seed=0)
    np.testing.assert_allclose(agent.cql_alpha_value(), 1.0, rtol=1e-6)
    batch = random_batch(utd * 6, seed=3)
    new, _ = jax.jit(lambda a, b: a.update(b))(agent, {**batch, "mc_returns": jnp.linspace(-2, 2, utd * 6)})
    assert np.sign(float(new.cql_alpha_value()) - 1.0) == direction
    assert int(new.cql_lagrange.step) == steps
