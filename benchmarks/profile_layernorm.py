"""What LayerNorm costs in the critic ensemble's passes, and two layouts that might cost less.

Run by hand:  .venv/bin/python benchmarks/profile_layernorm.py [--hidden 256] [--rows 256 1024]
The actor step differentiates the 10-critic ensemble to the actions on 1024 rows; a critic step differentiates it to
its parameters on 256. For each row count, the best-of-windows time of each pass for:
  wsrl        the ensemble as it is (nets.CriticEnsemble: its LayerNorm with matrix-vector reductions);
  affine      the same with LayerNorm's normalisation taken out (scale and bias kept): a floor, not a network;
  members     to the actions only: the same network computed one member at a time (`lax.map`), each member's
              activations small enough to stay in cache;
with the largest difference of the members layout's action gradients from wsrl's.
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import jax
import jax.numpy as jnp

from wsrl import nets

OBS_DIM, ACTION_DIM, MEMBERS = 17, 6, 10


def best_ms(compiled, *args, seconds: float = 3.0) -> float:
    jax.block_until_ready(compiled(*args))
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(5):
            out = compiled(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - start) / 5)
    return best * 1e3


def member_q(params: dict, x: jax.Array) -> jax.Array:
    """One member's Q on inputs `x` (its parameters without the ensemble axis, and the shared head)."""
    depth = sum(k.startswith("norm_scale_") for k in params)
    for i in range(depth):
        x = x @ params[f"kernel_{i}"] + params[f"bias_{i}"]
        x = jax.nn.relu(nets.layer_norm(x, params[f"norm_scale_{i}"], params[f"norm_bias_{i}"]))
    return (x @ params["shared_head_kernel"] + params["shared_head_bias"])[..., 0]


def profile(model: nets.CriticEnsemble, rows: int) -> None:
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    obs = jax.random.normal(keys[0], (rows, OBS_DIM))
    actions = jax.random.uniform(keys[1], (rows, ACTION_DIM), minval=-1, maxval=1)
    params = model.init(keys[2], obs, actions)["params"]

    def ensemble_q(p, a):
        return model.apply({"params": p}, obs, a)

    def members_q(p, a):
        head = {k: v for k, v in p.items() if k.startswith("shared_head")}
        per_member = {k: v for k, v in p.items() if k not in head}
        x = jnp.concatenate([obs, a], axis=-1)
        return jax.lax.map(lambda m: member_q({**m, **head}, x), per_member)

    def to_actions(q_fn):
        return jax.jit(jax.grad(lambda a, p: q_fn(p, a).min(axis=0).sum())).lower(actions, params).compile()

    def to_params(q_fn):
        return jax.jit(jax.grad(lambda p, a: q_fn(p, a).mean())).lower(params, actions).compile()

    wsrl = to_actions(ensemble_q), to_params(ensemble_q)
    members = to_actions(members_q)
    with mock.patch.object(nets, "layer_norm", lambda x, scale, bias: x * scale + bias):
        affine = to_actions(ensemble_q), to_params(ensemble_q)
    difference = float(jnp.abs(members(actions, params) - wsrl[0](actions, params)).max())
    print(f"\n{rows} rows | to the actions (ms) | to the parameters (ms)\n---|---|---\n"
          f"wsrl | {best_ms(wsrl[0], actions, params):.2f} | {best_ms(wsrl[1], params, actions):.2f}\n"
          f"affine | {best_ms(affine[0], actions, params):.2f} | {best_ms(affine[1], params, actions):.2f}\n"
          f"members | {best_ms(members, actions, params):.2f} | (max difference from wsrl {difference:.1e})",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=[256, 1024])
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; {MEMBERS} critics {args.layers}x{args.hidden}")
    model = nets.CriticEnsemble(MEMBERS, (args.hidden,) * args.layers)
    for rows in args.rows:
        profile(model, rows)


if __name__ == "__main__":
    main()
