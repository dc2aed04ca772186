"""Networks: LayerNorm MLPs, the critic ensemble, tanh-Gaussian policy and the temperature (METHOD.md §2.9)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

STD_MIN, STD_MAX = 1e-5, 10.0


def orthogonal(scale: float = float(np.sqrt(2.0))) -> nn.initializers.Initializer:
    return nn.initializers.orthogonal(scale)


class MLP(nn.Module):
    """Dense -> (LayerNorm) -> ReLU on every hidden layer; orthogonal init with scale sqrt 2.

    `last_hidden_init_scale` multiplies the init scale of the last hidden layer (1e-2 in the paper's presets).
    """

    hidden_dims: Sequence[int]
    layer_norm: bool = True
    last_hidden_init_scale: float | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.hidden_dims):
            scale = float(np.sqrt(2.0))
            if self.last_hidden_init_scale is not None and i == len(self.hidden_dims) - 1:
                scale *= self.last_hidden_init_scale
            x = nn.Dense(width, kernel_init=orthogonal(scale))(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return x


class QFunction(nn.Module):
    """Q(s, a): MLP on the concatenation, then a scalar head."""

    hidden_dims: Sequence[int]
    layer_norm: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        x = MLP(self.hidden_dims, self.layer_norm)(jnp.concatenate([obs, actions], axis=-1))
        return nn.Dense(1, kernel_init=orthogonal(1.0))(x)[..., 0]


class CriticEnsemble(nn.Module):
    """`num` independent Q-functions evaluated at once; output shape (num, *batch)."""

    num: int
    hidden_dims: Sequence[int]
    layer_norm: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            QFunction,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num,
        )
        return ensemble(self.hidden_dims, self.layer_norm)(obs, actions)


class TanhGaussianPolicy(nn.Module):
    """pi(a|s) = tanh(N(mu(s), sigma)); sigma is state-dependent ("exp") or a learned vector ("uniform")."""

    action_dim: int
    hidden_dims: Sequence[int]
    layer_norm: bool = True
    last_hidden_init_scale: float | None = None
    std_type: str = "exp"

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = MLP(self.hidden_dims, self.layer_norm, self.last_hidden_init_scale)(obs)
        mean = nn.Dense(self.action_dim, kernel_init=orthogonal(1.0))(x)
        if self.std_type == "exp":
            log_std = nn.Dense(self.action_dim, kernel_init=orthogonal(1.0))(x)
        elif self.std_type == "uniform":
            log_std = jnp.broadcast_to(
                self.param("log_std", nn.initializers.zeros, (self.action_dim,)), mean.shape
            )
        else:
            raise ValueError(f"unknown policy std type {self.std_type!r}")
        std = jnp.clip(jnp.exp(log_std), STD_MIN, STD_MAX)
        return mean, std


def tanh_gaussian_sample(key: jax.Array, mean: jax.Array, std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample a = tanh(mean + std * eps) and its log-density (summed over action dims)."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    pre_tanh = mean + std * eps
    gaussian_log_prob = -0.5 * eps**2 - jnp.log(std) - 0.5 * jnp.log(2.0 * jnp.pi)
    # log |d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable.
    log_det = 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.tanh(pre_tanh), jnp.sum(gaussian_log_prob - log_det, axis=-1)


class Temperature(nn.Module):
    """alpha = softplus(lambda), lambda initialised so that alpha = `initial_value` (METHOD.md §2.7)."""

    initial_value: float = 1.0

    @nn.compact
    def __call__(self) -> jax.Array:
        init = float(np.log(np.expm1(self.initial_value)))
        lam = self.param("lagrange", nn.initializers.constant(init), ())
        return jax.nn.softplus(lam)
