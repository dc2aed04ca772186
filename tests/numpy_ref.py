"""Direct numpy re-implementations of the networks and losses, to check the JAX code against."""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def layer_norm(x, scale, bias):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * scale + bias


def critic_ensemble(params, obs, actions, layer_norm_on=True):
    """Q-values (num, B) of the stacked-weights ensemble, one member at a time: each member's MLP, then the
    value head all members share (`shared_head_*`) or the member's own (its last `kernel_i`)."""
    params = {k: np.asarray(v) for k, v in params.items()}
    num = params["kernel_0"].shape[0]
    layers = sum(k.startswith("kernel_") for k in params)
    shared = "shared_head_kernel" in params
    out = []
    for e in range(num):
        x = np.concatenate([obs, actions], -1)
        for i in range(layers):
            x = x @ params[f"kernel_{i}"][e] + params[f"bias_{i}"][e]
            if i < layers - 1 or shared:
                if layer_norm_on:
                    x = layer_norm(x, params[f"norm_scale_{i}"][e, 0], params[f"norm_bias_{i}"][e, 0])
                x = np.maximum(x, 0)
        if shared:
            x = x @ params["shared_head_kernel"] + params["shared_head_bias"]
        out.append(x[..., 0])
    return np.stack(out)


def policy(params, obs):
    """(mean, std) of the tanh-Gaussian policy with an 'exp' std head and LayerNorm MLP."""
    mlp = params["MLP_0"]
    x = obs
    for i in range(sum(k.startswith("Dense_") for k in mlp)):
        x = x @ np.asarray(mlp[f"Dense_{i}"]["kernel"]) + np.asarray(mlp[f"Dense_{i}"]["bias"])
        ln = mlp[f"LayerNorm_{i}"]
        x = np.maximum(layer_norm(x, np.asarray(ln["scale"]), np.asarray(ln["bias"])), 0)
    mean = x @ np.asarray(params["Dense_0"]["kernel"]) + np.asarray(params["Dense_0"]["bias"])
    log_std = x @ np.asarray(params["Dense_1"]["kernel"]) + np.asarray(params["Dense_1"]["bias"])
    return mean, np.clip(np.exp(log_std), 1e-5, 10.0)


def tanh_gaussian(mean, std, eps):
    """Sampled action and its log-density by the change-of-variables formula."""
    mean, std, eps = (np.asarray(x, np.float64) for x in (mean, std, eps))
    u = mean + std * eps
    log_normal = -0.5 * eps**2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    return np.tanh(u), (log_normal - np.log(1 - np.tanh(u) ** 2)).sum(-1)


def softplus(x):
    return np.log1p(np.exp(x))
