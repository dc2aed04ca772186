import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpy_ref
import pytest

from wsrl.nets import CriticEnsemble, Temperature, layer_norm, tanh_gaussian_sample


def test_layer_norm_matches_flax_values_and_gradients():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 16)) * 3 + 1
    scale = jax.random.normal(jax.random.PRNGKey(1), (3, 1, 16))
    bias = jax.random.normal(jax.random.PRNGKey(2), (3, 1, 16))

    def ours(x, scale, bias):
        return jnp.sum(jnp.sin(layer_norm(x, scale, bias)))

    def reference(x, scale, bias):
        normed = nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-6).apply({}, x)
        return jnp.sum(jnp.sin(normed * scale + bias))

    np.testing.assert_allclose(ours(x, scale, bias), reference(x, scale, bias), rtol=1e-5)
    for g_ours, g_ref in zip(jax.grad(ours, (0, 1, 2))(x, scale, bias), jax.grad(reference, (0, 1, 2))(x, scale, bias),
                             strict=True):
        assert g_ours.shape == g_ref.shape
        np.testing.assert_allclose(g_ours, g_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shared_head", [True, False])
def test_critic_ensemble_members_are_independent_numpy_mlps(shared_head):
    module = CriticEnsemble(num=3, hidden_dims=(6, 5), shared_head=shared_head)
    rng = np.random.default_rng(0)
    obs, actions = rng.normal(size=(4, 3)).astype(np.float32), rng.uniform(-1, 1, (4, 2)).astype(np.float32)
    params = module.init(jax.random.PRNGKey(0), obs, actions)["params"]
    heads = {k: v.shape for k, v in params.items() if "head" in k or k.endswith("_2")}
    assert heads == ({"shared_head_kernel": (5, 1), "shared_head_bias": (1,)} if shared_head else
                     {"kernel_2": (3, 5, 1), "bias_2": (3, 1)})
    q = module.apply({"params": params}, obs, actions)
    assert q.shape == (3, 4)
    np.testing.assert_allclose(q, numpy_ref.critic_ensemble(params, obs, actions), rtol=1e-4, atol=1e-5)
    assert not np.allclose(q[0], q[1]), "members must be initialised independently"
    # Extra leading batch dims (used by the max-target backup) evaluate the same function.
    q3 = module.apply({"params": params}, np.stack([obs, obs], 1), np.stack([actions, actions], 1))
    assert q3.shape == (3, 4, 2)
    np.testing.assert_allclose(q3[..., 1], q, rtol=1e-5, atol=1e-6)


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    rng = np.random.default_rng(1)
    mean, std = rng.normal(size=(6, 3)).astype(np.float32), rng.uniform(0.1, 2, (6, 3)).astype(np.float32)
    key = jax.random.PRNGKey(3)
    actions, log_prob = tanh_gaussian_sample(key, jnp.asarray(mean), jnp.asarray(std))
    eps = np.asarray(jax.random.normal(key, mean.shape))
    expected_actions, expected_log_prob = numpy_ref.tanh_gaussian(mean, std, eps)
    np.testing.assert_allclose(actions, expected_actions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_prob, expected_log_prob, rtol=1e-4, atol=1e-4)


def test_temperature_is_softplus_of_lagrange_and_starts_at_initial_value():
    module = Temperature(initial_value=1.0)
    params = module.init(jax.random.PRNGKey(0))["params"]
    np.testing.assert_allclose(module.apply({"params": params}), 1.0, rtol=1e-6)
    params = {"lagrange": jnp.asarray(-3.0)}
    np.testing.assert_allclose(module.apply({"params": params}), numpy_ref.softplus(-3.0), rtol=1e-6)


def singular_values(kernel) -> np.ndarray:
    return np.linalg.svd(np.asarray(kernel, np.float64), compute_uv=False)


def test_init_scales_are_the_reference_codes():
    """Orthogonal sqrt 2 everywhere, the last hidden layer of policy and critics at 1e-2 instead (not times sqrt 2),
    output heads sqrt 2; IQL's MLPs variance scaling (docs/method.md §2.9)."""
    from helpers import ACTION_DIM, OBS_DIM

    from wsrl.agents.iql import IQLAgent
    from wsrl.agents.sac import SACAgent
    from wsrl.config import IQLConfig, SACConfig

    config = SACConfig(actor_hidden_dims=(16, 16), critic_hidden_dims=(16, 16), num_critics=3)
    sac = SACAgent.create(config, OBS_DIM, ACTION_DIM, seed=0)
    actor, critic = sac.actor.params, sac.critic.params
    sqrt2 = np.sqrt(2.0)
    for kernel, scale in [(actor["MLP_0"]["Dense_0"]["kernel"], sqrt2), (actor["MLP_0"]["Dense_1"]["kernel"], 1e-2),
                          (actor["Dense_0"]["kernel"], sqrt2), (actor["Dense_1"]["kernel"], sqrt2),
                          *[(critic["kernel_0"][e], sqrt2) for e in range(3)],
                          *[(critic["kernel_1"][e], 1e-2) for e in range(3)], (critic["shared_head_kernel"], sqrt2)]:
        np.testing.assert_allclose(singular_values(kernel), scale, rtol=1e-4)
    unscaled = SACAgent.create(dataclasses.replace(config, last_hidden_init_scale=None), OBS_DIM, ACTION_DIM, 0)
    np.testing.assert_allclose(singular_values(unscaled.critic.params["kernel_1"][0]), sqrt2, rtol=1e-4)

    iql = IQLAgent.create(IQLConfig(actor_hidden_dims=(64, 64), critic_hidden_dims=(64, 64)), OBS_DIM, ACTION_DIM, 0)
    policy_mlp = iql.actor.params["MLP_0"]
    for kernel, scale in [(policy_mlp["Dense_0"]["kernel"], 1.0), (policy_mlp["Dense_1"]["kernel"], 1e-2),
                          (iql.value.params["MLP_0"]["Dense_1"]["kernel"], 1.0),
                          (iql.critic.params["kernel_1"][1], 1.0)]:
        limit = np.sqrt(3.0 * scale / np.mean(kernel.shape))  # uniform(-limit, limit), fan_avg
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    np.testing.assert_allclose(singular_values(iql.critic.params["shared_head_kernel"]), sqrt2, rtol=1e-4)
