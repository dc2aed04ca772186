"""Networks: LayerNorm MLPs, the critic ensemble, tanh-Gaussian policy and the temperature (docs/method.md §2.9)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

STD_MIN, STD_MAX = 1e-5, 10.0


def orthogonal(scale: float = float(np.sqrt(2.0))) -> nn.initializers.Initializer:
    return nn.initializers.orthogonal(scale)


LAYER_NORM_EPS = 1e-6


def _mean_last(x: jax.Array) -> jax.Array:
    """Mean over the last axis as a matrix-vector product (XLA's CPU reductions are several times slower)."""
    return x @ jnp.full((x.shape[-1], 1), 1.0 / x.shape[-1], x.dtype)


def _sum_to(g: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


def _layer_norm_fwd(x: jax.Array, scale: jax.Array, bias: jax.Array):
    centred = x - _mean_last(x)
    inv_std = jax.lax.rsqrt(_mean_last(jnp.square(centred)) + LAYER_NORM_EPS)
    normed = centred * inv_std
    return normed * scale + bias, (normed, inv_std, scale)


def _layer_norm_bwd(residuals, dy: jax.Array):
    normed, inv_std, scale = residuals
    dnormed = dy * scale
    dx = inv_std * (dnormed - _mean_last(dnormed) - normed * _mean_last(dnormed * normed))
    return dx, _sum_to(dy * normed, scale.shape), _sum_to(dy, scale.shape)


@jax.custom_vjp
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """(x - mean) / sqrt(var + eps) * scale + bias over the last axis; scale and bias broadcast against x.

    Same numbers as flax's LayerNorm; the hand-written backward pass with matvec reductions makes the
    ensemble's gradient several times faster on CPU (docs/architecture.md §6).
    """
    return _layer_norm_fwd(x, scale, bias)[0]


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


class LayerNorm(nn.Module):
    """LayerNorm over the last axis with learned scale and bias (flax's parameter names)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return layer_norm(x, scale, bias)


class MLP(nn.Module):
    """Dense -> (LayerNorm) -> ReLU on every hidden layer; orthogonal init with scale sqrt 2.

    `last_hidden_init_scale` multiplies the init scale of the last hidden layer (1e-2 in the paper's presets).
    """

    hidden_dims: Sequence[int]
    layer_norm: bool = True
    last_hidden_init_scale: float | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for i, width in enumerate(self.hidden_dims):
            scale = float(np.sqrt(2.0))
            if self.last_hidden_init_scale is not None and i == len(self.hidden_dims) - 1:
                scale *= self.last_hidden_init_scale
            x = nn.Dense(width, kernel_init=orthogonal(scale))(x)
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
            if self.layer_norm:
                x = LayerNorm()(x)
            x = nn.relu(x)
        return x


class ValueFunction(nn.Module):
    """V(s): MLP then a scalar head (IQL)."""

    hidden_dims: Sequence[int]
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return nn.Dense(1, kernel_init=orthogonal(1.0))(MLP(self.hidden_dims, self.layer_norm)(obs))[..., 0]


class GaussianPolicy(nn.Module):
    """IQL's policy: N(tanh(mu(s)), sigma) with a learned state-independent log-std clipped to [-5, 2]."""

    action_dim: int
    hidden_dims: Sequence[int]
    layer_norm: bool = False
    last_hidden_init_scale: float | None = 1e-2
    dropout: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        x = MLP(self.hidden_dims, self.layer_norm, self.last_hidden_init_scale, self.dropout)(obs, train)
        mean = jnp.tanh(nn.Dense(self.action_dim, kernel_init=orthogonal(1.0))(x))
        log_std = jnp.clip(self.param("log_std", nn.initializers.zeros, (self.action_dim,)), -5.0, 2.0)
        return mean, jnp.broadcast_to(jnp.exp(log_std), mean.shape)


def gaussian_log_prob(mean: jax.Array, std: jax.Array, actions: jax.Array) -> jax.Array:
    """log N(actions; mean, diag(std^2)), summed over action dims."""
    z = (actions - mean) / std
    return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def _ensemble_init(init: nn.initializers.Initializer, num: int) -> nn.initializers.Initializer:
    """An independent draw of `init` for each of `num` ensemble members, stacked on axis 0."""

    def stacked(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.vmap(lambda k: init(k, shape[1:], dtype))(jax.random.split(key, num))

    return stacked


class CriticEnsemble(nn.Module):
    """`num` independent Q(s, a) MLPs (Dense -> LayerNorm -> ReLU per hidden layer, scalar head).

    Output shape (num, *batch). The members' weights are stacked on a leading axis. The first layer
    reads the shared input with one flat matmul against all members' kernels side by side, and later
    layers are batched matmuls: on CPU this is several times faster in the backward pass to the
    actions than vmapping a single Q-network (docs/architecture.md §6).
    """

    num: int
    hidden_dims: Sequence[int]
    layer_norm: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, actions], axis=-1)
        batch_shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # (B, in), shared by every member
        widths = [*self.hidden_dims, 1]
        for i, width in enumerate(widths):
            init = orthogonal(float(np.sqrt(2.0)) if i < len(self.hidden_dims) else 1.0)
            kernel = self.param(f"kernel_{i}", _ensemble_init(init, self.num), (self.num, x.shape[-1], width))
            bias = self.param(f"bias_{i}", nn.initializers.zeros, (self.num, width))
            if i == 0:
                flat = kernel.transpose(1, 0, 2).reshape(kernel.shape[1], self.num * width)
                x = (x @ flat).reshape(-1, self.num, width).transpose(1, 0, 2)
            else:
                x = jnp.einsum("ebi,eio->ebo", x, kernel)
            x = x + bias[:, None, :]
            if i < len(self.hidden_dims):
                if self.layer_norm:
                    scale = self.param(f"norm_scale_{i}", nn.initializers.ones, (self.num, 1, width))
                    offset = self.param(f"norm_bias_{i}", nn.initializers.zeros, (self.num, 1, width))
                    x = layer_norm(x, scale, offset)
                x = nn.relu(x)
        return x[..., 0].reshape(self.num, *batch_shape)


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
    """alpha = softplus(lambda), lambda initialised so that alpha = `initial_value` (docs/method.md §2.7)."""

    initial_value: float = 1.0

    @nn.compact
    def __call__(self) -> jax.Array:
        init = float(np.log(np.expm1(self.initial_value)))
        lam = self.param("lagrange", nn.initializers.constant(init), ())
        return jax.nn.softplus(lam)
