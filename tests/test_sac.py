import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpy_ref
import pytest
from helpers import ACTION_DIM, OBS_DIM, TINY, random_batch

from wsrl.agents.sac import SACAgent, sample_critic_subset, td_target, update


def make_agent(config=TINY, seed=0) -> SACAgent:
    agent = SACAgent.create(config, OBS_DIM, ACTION_DIM, seed)
    # Targets that differ from the online critics, so the test tells them apart.
    noisy = jax.tree.map(lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)), agent.critic.params)
    return agent.replace(critic=agent.critic.replace(target_params=noisy))


def host(tree):
    return jax.tree.map(np.asarray, tree)


@pytest.mark.parametrize("entropy_backup", [False, True])
@pytest.mark.parametrize("max_target_backup", [False, True])
def test_td_target_and_critic_loss_equal_numpy(entropy_backup, max_target_backup):
    config = dataclasses.replace(TINY, entropy_backup=entropy_backup, max_target_backup=max_target_backup,
                                 backup_actions=3)
    agent = make_agent(config)
    agent = agent.replace(temperature=agent.temperature.replace(params={"lagrange": jnp.asarray(0.3)}))
    batch = random_batch(7)
    key = jax.random.PRNGKey(11)
    loss, metrics = agent.critic_loss(agent.critic.params, batch, key)

    b = host(batch)
    n = 3 if max_target_backup else 1
    action_key, subset_key = jax.random.split(key)
    eps = np.asarray(jax.random.normal(action_key, (7, n, ACTION_DIM)))
    mean, std = numpy_ref.policy(host(agent.actor.params), b["next_observations"])
    next_actions, next_log_prob = numpy_ref.tanh_gaussian(mean[:, None], std[:, None], eps)
    subset = np.asarray(jax.random.randint(subset_key, (2,), 0, 4))  # drawn with replacement
    next_obs = np.repeat(b["next_observations"][:, None], n, 1)
    q_next = numpy_ref.critic_ensemble(host(agent.critic.target_params), next_obs, next_actions)[subset].min(0)
    best = q_next.argmax(1)
    q_next, next_log_prob = q_next[np.arange(7), best], next_log_prob[np.arange(7), best]
    alpha = numpy_ref.softplus(0.3)
    if entropy_backup:
        q_next = q_next - alpha * next_log_prob
    target = b["rewards"] + 0.99 * b["masks"] * q_next
    q = numpy_ref.critic_ensemble(host(agent.critic.params), b["observations"], b["actions"])
    expected = np.mean((q - target[None]) ** 2)

    np.testing.assert_allclose(metrics["target_q_mean"], target.mean(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    np.testing.assert_allclose(metrics["q_mean"], q.mean(), rtol=1e-4, atol=1e-6)


def test_td_target_has_no_entropy_term_when_backup_is_off():
    r, m, q, logp = (jnp.asarray([1.0, 2.0]), jnp.asarray([1.0, 0.0]), jnp.asarray([3.0, 5.0]),
                     jnp.asarray([-4.0, 7.0]))
    off = td_target(r, m, q, logp, jnp.asarray(0.5), 0.9, entropy_backup=False)
    on = td_target(r, m, q, logp, jnp.asarray(0.5), 0.9, entropy_backup=True)
    np.testing.assert_allclose(off, [1.0 + 0.9 * 3.0, 2.0])  # terminal: mask 0 drops the bootstrap
    np.testing.assert_allclose(on, [1.0 + 0.9 * (3.0 + 0.5 * 4.0), 2.0])


def test_subset_with_replacement_repeats_about_one_time_in_ten():
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    with_repl = np.asarray(jax.vmap(lambda k: sample_critic_subset(k, 10, 2, True))(keys))
    without = np.asarray(jax.vmap(lambda k: sample_critic_subset(k, 10, 2, False))(keys))
    assert with_repl.min() >= 0 and with_repl.max() <= 9 and without.min() >= 0 and without.max() <= 9
    assert (without[:, 0] != without[:, 1]).all()
    repeat_rate = (with_repl[:, 0] == with_repl[:, 1]).mean()
    assert 0.07 < repeat_rate < 0.13, repeat_rate  # P(i == j) = 1/10
    assert len(np.unique(with_repl)) == 10 and len(np.unique(without)) == 10


@pytest.mark.parametrize("reduction", ["min", "mean"])
def test_actor_loss_uses_min_or_mean_over_all_critics(reduction):
    agent = make_agent(dataclasses.replace(TINY, actor_critic_reduction=reduction))
    batch = random_batch(6)
    key = jax.random.PRNGKey(5)
    loss, _ = agent.actor_loss(agent.actor.params, batch, key)

    b = host(batch)
    mean, std = numpy_ref.policy(host(agent.actor.params), b["observations"])
    actions, log_prob = numpy_ref.tanh_gaussian(mean, std, np.asarray(jax.random.normal(key, mean.shape)))
    q = numpy_ref.critic_ensemble(host(agent.critic.params), b["observations"], actions)
    q = q.min(0) if reduction == "min" else q.mean(0)
    np.testing.assert_allclose(loss, np.mean(1.0 * log_prob - q), rtol=1e-4, atol=1e-5)
    other = "mean" if reduction == "min" else "min"
    other_loss, _ = agent.replace(config=dataclasses.replace(agent.config, actor_critic_reduction=other)).actor_loss(
        agent.actor.params, batch, key)
    assert (other_loss > loss) == (reduction == "mean")  # min over critics is pessimistic: higher loss


def test_temperature_rises_when_entropy_is_below_target_and_falls_above():
    agent = make_agent()
    target = -1.0 * ACTION_DIM
    grad_below = jax.grad(lambda p: agent.temperature_loss(p, jnp.asarray(target - 1.0))[0])(agent.temperature.params)
    grad_above = jax.grad(lambda p: agent.temperature_loss(p, jnp.asarray(target + 1.0))[0])(agent.temperature.params)
    assert grad_below["lagrange"] < 0 < grad_above["lagrange"]  # descent raises alpha below target
    lam = float(agent.temperature.params["lagrange"])
    np.testing.assert_allclose(agent.alpha(), numpy_ref.softplus(lam), rtol=1e-6)
    loss, metrics = agent.temperature_loss(agent.temperature.params, jnp.asarray(target + 2.0))
    np.testing.assert_allclose(loss, numpy_ref.softplus(lam) * 2.0, rtol=1e-5)


@pytest.mark.parametrize("step_all", [True, False])
def test_high_utd_update_counts_steps_and_polyak_updates_targets_after_each_critic_step(step_all):
    agent = make_agent(dataclasses.replace(TINY, step_all_optimizers=step_all))
    batch = random_batch(TINY.utd * TINY.batch_size)
    new, metrics = update(agent, batch)
    nets = (new.critic, new.actor, new.temperature)
    assert [int(n.step) for n in nets] == [TINY.utd, 1, 1]  # gradient steps
    # The reference's bookkeeping: every Adam steps on every one of the utd + 1 steps (docs/method.md §2.4).
    adam_counts = [int(n.opt_state[0].count) for n in nets]
    assert adam_counts == ([TINY.utd + 1] * 3 if step_all else [TINY.utd, 1, 1])
    assert {"critic_loss", "q_mean", "actor_loss", "temperature", "entropy"} <= set(metrics)

    # Replay the critic steps one at a time: after each, target <- tau * params + (1 - tau) * target.
    replay, tau = agent, TINY.tau
    for i in range(TINY.utd):
        before = replay.critic.target_params
        minibatch = {k: v[i * TINY.batch_size:(i + 1) * TINY.batch_size] for k, v in batch.items()}
        replay, _ = replay.update_critic(minibatch)
        expected = jax.tree.map(lambda p, t: tau * p + (1 - tau) * t, replay.critic.params, before)
        for got, want in zip(jax.tree.leaves(replay.critic.target_params), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    for got, want in zip(jax.tree.leaves(new.critic.target_params), jax.tree.leaves(replay.critic.target_params),
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def leaves_differ(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.parametrize("step_all", [True, False])
def test_networks_not_updated_move_by_their_momentum_only_with_step_all_optimizers(step_all):
    agent = make_agent(dataclasses.replace(TINY, step_all_optimizers=step_all))
    batch = random_batch(TINY.utd * TINY.batch_size)
    agent, _ = update(agent, batch)  # every network now has Adam moments
    minibatch = {k: v[:TINY.batch_size] for k, v in batch.items()}
    after_critic, _ = agent.update_critic(minibatch)
    assert leaves_differ(after_critic.actor.params, agent.actor.params) == step_all
    assert leaves_differ(after_critic.temperature.params, agent.temperature.params) == step_all
    after_actor, _ = agent.update_actor_and_temperature(batch)
    assert leaves_differ(after_actor.critic.params, agent.critic.params) == step_all
    assert not leaves_differ(after_actor.critic.target_params, agent.critic.target_params)  # no Polyak step


def test_utd_1_with_step_all_optimizers_takes_every_gradient_at_the_same_parameters():
    agent = make_agent(dataclasses.replace(TINY, utd=1))
    batch = random_batch(TINY.batch_size)
    new, _ = update(agent, batch)
    split, (critic_key, actor_key) = agent.split_rng(2)
    critic_grads, _ = split.critic_gradients(batch, critic_key)
    actor_grads, _ = split.actor_gradients(batch, actor_key)  # the actor loss reads the critic before its step
    for net, grads in [("critic", critic_grads), ("actor", actor_grads), ("temperature", actor_grads)]:
        expected = getattr(split, net).apply_gradients(grads[net]).params
        for got, want in zip(jax.tree.leaves(getattr(new, net).params), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_actor_on_last_minibatch_differs_from_full_batch():
    batch = random_batch(TINY.utd * TINY.batch_size)
    full, _ = update(make_agent(), batch)
    last, _ = update(make_agent(dataclasses.replace(TINY, actor_on_full_batch=False)), batch)
    assert leaves_differ(full.actor.params, last.actor.params)


def test_same_seed_gives_identical_metrics_and_different_seed_does_not():
    batch = random_batch(TINY.utd * TINY.batch_size)

    def run(seed):
        agent, history = SACAgent.create(TINY, OBS_DIM, ACTION_DIM, seed), []
        for _ in range(3):
            agent, metrics = update(agent, batch)
            history.append({k: float(v) for k, v in metrics.items()})
        return history

    assert run(0) == run(0)
    assert run(0) != run(1)
