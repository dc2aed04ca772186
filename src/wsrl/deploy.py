"""A trained policy for deployment, with numpy alone: no JAX, Flax or Gymnasium on the robot (docs/robots.md).

`wsrl export RUN --out policy.npz` (or `wsrl.export`) writes the actor's weights and what they mean; here
`NumpyPolicy.load(path)` computes the same actions as the JAX policy, in the env's own units:

    from wsrl.deploy import NumpyPolicy
    policy = NumpyPolicy.load("policy.npz")
    action = policy(observation)                          # deterministic: tanh(mean), mapped to the env's bounds
    action = policy.sample(observation, np.random.default_rng(0))   # a sampled action

The file holds: `hidden_kernel_I` / `hidden_bias_I` (and `hidden_ln_scale_I` / `hidden_ln_bias_I` with LayerNorm)
for each hidden layer I (Dense -> LayerNorm -> ReLU), `mean_kernel` / `mean_bias`, either `log_std_kernel` /
`log_std_bias` (a state-dependent std) or `log_std` (a learned vector), `action_low` / `action_high`, and `squash`
(1: tanh-Gaussian, the SAC / CQL / Cal-QL actor; 0: IQL's plain Gaussian).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

FORMAT = 1
LAYER_NORM_EPS = 1e-6  # as wsrl.nets
STD_MIN, STD_MAX = 1e-5, 10.0
EVAL_ACTION_LIMIT = 0.99999  # deterministic actions are clipped to this before mapping (evaluation, the API)


class NumpyPolicy:
    """The exported actor: a numpy forward pass, actions in the env's units."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        if int(arrays.get("format", -1)) != FORMAT:
            raise ValueError(f"not a wsrl policy export of format {FORMAT}; export it again with `wsrl export`")
        self.layers = []
        while f"hidden_kernel_{len(self.layers)}" in arrays:
            i = len(self.layers)
            norm = (arrays[f"hidden_ln_scale_{i}"], arrays[f"hidden_ln_bias_{i}"]) if f"hidden_ln_scale_{i}" in arrays \
                else None
            self.layers.append((arrays[f"hidden_kernel_{i}"], arrays[f"hidden_bias_{i}"], norm))
        self.mean_kernel, self.mean_bias = arrays["mean_kernel"], arrays["mean_bias"]
        self.log_std_head = (arrays["log_std_kernel"], arrays["log_std_bias"]) if "log_std_kernel" in arrays else None
        self.log_std = arrays.get("log_std")
        self.squash = bool(arrays["squash"])
        self.low, self.high = arrays["action_low"].astype(np.float64), arrays["action_high"].astype(np.float64)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NumpyPolicy:
        with np.load(path, allow_pickle=False) as stored:
            return cls({k: stored[k] for k in stored.files})

    @property
    def observation_dim(self) -> int:
        return int((self.layers[0][0] if self.layers else self.mean_kernel).shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.mean_kernel.shape[1])

    def distribution(self, observation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Gaussian's mean and std before any squashing (one observation or a batch), in [-1, 1] units."""
        x = np.asarray(observation, np.float32)
        if x.shape[-1] != self.observation_dim:
            raise ValueError(f"the policy takes observations of size {self.observation_dim}, got shape {x.shape}")
        for kernel, bias, norm in self.layers:
            x = x @ kernel + bias
            if norm is not None:
                centred = x - x.mean(-1, keepdims=True)
                x = centred / np.sqrt(np.square(centred).mean(-1, keepdims=True) + LAYER_NORM_EPS) * norm[0] + norm[1]
            x = np.maximum(x, 0.0)
        mean = x @ self.mean_kernel + self.mean_bias
        log_std = x @ self.log_std_head[0] + self.log_std_head[1] if self.log_std_head is not None else \
            np.broadcast_to(self.log_std, mean.shape)
        return mean, np.clip(np.exp(log_std), STD_MIN, STD_MAX)

    def to_env(self, unit_action: np.ndarray) -> np.ndarray:
        """An action in [-1, 1] mapped to the env's bounds."""
        return (self.low + (np.asarray(unit_action, np.float64) + 1.0) * 0.5 * (self.high - self.low)).astype(
            np.float32)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """The deterministic action: tanh(mean) (IQL: the mean), in the env's units."""
        mean, _ = self.distribution(observation)
        unit = np.tanh(mean) if self.squash else mean
        return self.to_env(np.clip(unit, -EVAL_ACTION_LIMIT, EVAL_ACTION_LIMIT))

    def sample(self, observation: np.ndarray, rng: np.random.Generator | None = None,
               noise: np.ndarray | None = None) -> np.ndarray:
        """A sampled action, tanh(mean + std * noise) (IQL: clip(mean + std * noise)), noise ~ N(0, 1) from `rng`
        unless given, in the env's units."""
        mean, std = self.distribution(observation)
        if noise is None:
            noise = (rng or np.random.default_rng()).standard_normal(mean.shape)
        raw = mean + std * noise
        return self.to_env(np.tanh(raw) if self.squash else np.clip(raw, -1.0, 1.0))


def actor_arrays(actor_params: Any, low: np.ndarray, high: np.ndarray, squash: bool) -> dict[str, np.ndarray]:
    """The arrays of a policy file: an actor's weights (the parameter tree of wsrl's `TanhGaussianPolicy` or
    `GaussianPolicy`, any arrays numpy can read), whether its mean is tanh-squashed, and the env's action bounds."""
    params = _plain(actor_params)
    mlp = params["MLP_0"]
    arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT), "action_low": np.asarray(low),
                                     "action_high": np.asarray(high), "squash": np.array(squash)}
    for i in range(sum(k.startswith("Dense_") for k in mlp)):
        dense = mlp[f"Dense_{i}"]
        arrays[f"hidden_kernel_{i}"], arrays[f"hidden_bias_{i}"] = dense["kernel"], dense["bias"]
        if f"LayerNorm_{i}" in mlp:
            arrays[f"hidden_ln_scale_{i}"] = mlp[f"LayerNorm_{i}"]["scale"]
            arrays[f"hidden_ln_bias_{i}"] = mlp[f"LayerNorm_{i}"]["bias"]
    arrays["mean_kernel"], arrays["mean_bias"] = params["Dense_0"]["kernel"], params["Dense_0"]["bias"]
    if "Dense_1" in params:
        arrays["log_std_kernel"], arrays["log_std_bias"] = params["Dense_1"]["kernel"], params["Dense_1"]["bias"]
    else:
        arrays["log_std"] = params["log_std"]
    return arrays


def _plain(tree: Any) -> Any:
    """A parameter tree as nested dicts of numpy arrays."""
    return {k: _plain(v) for k, v in tree.items()} if hasattr(tree, "items") else np.asarray(tree)
