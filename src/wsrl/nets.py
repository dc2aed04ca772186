"""Networks: LayerNorm MLPs, the critic ensemble, tanh-Gaussian policy and the temperature (docs/method.md §2.9)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

STD_MIN, STD_MAX = 1e-5, 10.0


SQRT2 = float(np.sqrt(2.0))


def kernel_init(kind: str = "orthogonal", scale: float | None = None) -> nn.initializers.Initializer:
    """The reference code's Dense kernel inits (docs/method.md §2.9): orthogonal with scale sqrt 2 (WSRL, CQL,
    Cal-QL, SAC), or variance scaling with scale 1, fan_avg, uniform (IQL's MLPs); `scale` replaces the default."""
    if kind == "orthogonal":
        return nn.initializers.orthogonal(SQRT2 if scale is None else scale)
    if kind == "variance_scaling":
        return nn.initializers.variance_scaling(1.0 if scale is None else scale, "fan_avg", "uniform")
    raise ValueError(f"unknown kernel init {kind!r}")


HEAD_INIT = kernel_init("orthogonal")  # every output head: policy mean and log-std, Q and V values


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


def hidden_init_scales(depth: int, last_hidden_init_scale: float | None) -> list[float | None]:
    """Per hidden layer, the init scale replacing the default (None: the default): only the last layer's changes."""
    return [last_hidden_init_scale if i == depth - 1 else None for i in range(depth)]


class MLP(nn.Module):
    """Dense -> (Dropout) -> (LayerNorm) -> ReLU on every hidden layer.

    Kernels init with `init_kind` ('orthogonal' sqrt 2 or IQL's 'variance_scaling'); `last_hidden_init_scale`
    replaces the last hidden layer's scale (1e-2 in the paper's presets; docs/method.md §2.9).
    """

    hidden_dims: Sequence[int]
    layer_norm: bool = True
    last_hidden_init_scale: float | None = None
    dropout: float = 0.0
    init_kind: str = "orthogonal"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        scales = hidden_init_scales(len(self.hidden_dims), self.last_hidden_init_scale)
        for width, scale in zip(self.hidden_dims, scales, strict=True):
            x = nn.Dense(width, kernel_init=kernel_init(self.init_kind, scale))(x)
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
            if self.layer_norm:
                x = LayerNorm()(x)
            x = nn.relu(x)
        return x


class ValueFunction(nn.Module):
    """V(s): IQL's variance-scaling MLP then a scalar head."""

    hidden_dims: Sequence[int]
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = MLP(self.hidden_dims, self.layer_norm, init_kind="variance_scaling")(obs)
        return nn.Dense(1, kernel_init=HEAD_INIT)(x)[..., 0]


class GaussianPolicy(nn.Module):
    """IQL's policy: N(mu(s), sigma), the mean a plain Dense output (no tanh), sigma = exp(learned
    state-independent log-std, init 0) clipped to [1e-5, 10]; variance-scaling MLP (docs/method.md §4)."""

    action_dim: int
    hidden_dims: Sequence[int]
    layer_norm: bool = False
    last_hidden_init_scale: float | None = 1e-2
    dropout: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        x = MLP(self.hidden_dims, self.layer_norm, self.last_hidden_init_scale, self.dropout,
                init_kind="variance_scaling")(obs, train)
        mean = nn.Dense(self.action_dim, kernel_init=HEAD_INIT)(x)
        std = jnp.clip(jnp.exp(self.param("log_std", nn.initializers.zeros, (self.action_dim,))), STD_MIN, STD_MAX)
        return mean, jnp.broadcast_to(std, mean.shape)


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
    """`num` Q(s, a) MLPs (Dense -> LayerNorm -> ReLU per hidden layer) and their scalar value head.

    Output shape (num, *batch). With `shared_head` (the reference WSRL code's ensemble) the members have their
    own MLP backbones and one value head (`shared_head_kernel`, `shared_head_bias`) maps every member's last
    hidden layer to Q; without it (RLPD's) each member has its own head (the last `kernel_i`, `bias_i`).
    The members' weights are stacked on a leading axis. The first layer reads the shared input with one flat
    matmul against all members' kernels side by side, and later layers are batched matmuls: on CPU this is
    several times faster in the backward pass to the actions than vmapping a single Q-network
    (docs/architecture.md §6).
    """

    num: int
    hidden_dims: Sequence[int]
    layer_norm: bool = True
    last_hidden_init_scale: float | None = None
    shared_head: bool = True
    init_kind: str = "orthogonal"

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, actions], axis=-1)
        batch_shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # (B, in), shared by every member
        depth = len(self.hidden_dims)
        scales = hidden_init_scales(depth, self.last_hidden_init_scale)
        layers = [(width, kernel_init(self.init_kind, s)) for width, s in zip(self.hidden_dims, scales, strict=True)]
        if not self.shared_head:
            layers.append((1, HEAD_INIT))
        for i, (width, init) in enumerate(layers):
            kernel = self.param(f"kernel_{i}", _ensemble_init(init, self.num), (self.num, x.shape[-1], width))
            bias = self.param(f"bias_{i}", nn.initializers.zeros, (self.num, width))
            if i == 0:
                flat = kernel.transpose(1, 0, 2).reshape(kernel.shape[1], self.num * width)
                x = (x @ flat).reshape(-1, self.num, width).transpose(1, 0, 2)
            else:
                x = jnp.einsum("ebi,eio->ebo", x, kernel)
            x = x + bias[:, None, :]
            if i < depth:
                if self.layer_norm:
                    scale = self.param(f"norm_scale_{i}", nn.initializers.ones, (self.num, 1, width))
                    offset = self.param(f"norm_bias_{i}", nn.initializers.zeros, (self.num, 1, width))
                    x = layer_norm(x, scale, offset)
                x = nn.relu(x)
        if self.shared_head:
            x = x @ self.param("shared_head_kernel", HEAD_INIT, (x.shape[-1], 1))
            x = x + self.param("shared_head_bias", nn.initializers.zeros, (1,))
        return x[..., 0].reshape(self.num, *batch_shape)


def ensemble_size(params: Any) -> int:
    """Number of members in a CriticEnsemble's parameters."""
    return params["bias_0"].shape[0]


def select_members(params: Any, indices: jax.Array) -> Any:
    """A CriticEnsemble's parameters restricted to the members `indices` (the shared head stays shared)."""
    return {k: v if k.startswith("shared_head") else v[indices] for k, v in params.items()}


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
        mean = nn.Dense(self.action_dim, kernel_init=HEAD_INIT)(x)
        if self.std_type == "exp":
            log_std = nn.Dense(self.action_dim, kernel_init=HEAD_INIT)(x)
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
