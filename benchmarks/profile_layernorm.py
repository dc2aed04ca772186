"""What LayerNorm costs in the critic ensemble's passes, and two layouts that might cost less.

Run by hand:  .venv/bin/python benchmarks/profile_layernorm.py [--hidden 256] [--rows 256 1024]
The actor step differentiates the 10-critic ensemble to the actions on 1024 rows; a critic step differentiates it to
its parameters on 256. For each row count, the best-of-windows time of each pass (profile_update.seconds_per_call)
for:
  wsrl        the ensemble as it is (nets.CriticEnsemble: its LayerNorm with matrix-vector reductions);
  affine      the same with LayerNorm's normalisation taken out (scale and bias kept): a floor, not a network;
  members     to the actions only: the same network computed one member at a time (`lax.map`), each member's
              activations small enough to stay in cache;
with the largest difference of the members layout's action gradients from wsrl's.
"""

from __future__ import annotations

import argparse
from unittest import mock

import jax
import jax.numpy as jnp
from profile_update import seconds_per_call
from throughput import ACTION_DIM, OBS_DIM

from wsrl import nets

MEMBERS = 10


def member_q(params: dict, x: jax.Array) -> jax.Array:
    """One member's Q on inputs `x` (its parameters without the ensemble axis, and the shared head)."""
    depth = sum(k.startswith("norm_scale_") for k in params)
    for i in range(depth):
        x = x @ params[f"kernel_{i}"] + params[f"bias_{i}"]
        x = jax.nn.relu(nets.layer_norm(x, params[f"norm_scale_{i}"], params[f"norm_bias_{i}"]))
    return (x @ params["shared_head_kernel"] + params["shared_head_bias"])[..., 0]


def profile(model: nets.CriticEnsemble, rows: int, seconds: float) -> None:
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
        return jax.grad(lambda a, p: q_fn(p, a).min(axis=0).sum()), (actions, params)

    def to_params(q_fn):
        return jax.grad(lambda p, a: q_fn(p, a).mean()), (params, actions)

    def ms(fn_and_args) -> float:
        return 1e3 * seconds_per_call(*fn_and_args, seconds)

    wsrl = ms(to_actions(ensemble_q)), ms(to_params(ensemble_q))
    members = ms(to_actions(members_q))
    with mock.patch.object(nets, "layer_norm", lambda x, scale, bias: x * scale + bias):  # compiled while patched
        affine = ms(to_actions(ensemble_q)), ms(to_params(ensemble_q))
    gradients = [jax.jit(fn)(*args) for fn, args in (to_actions(members_q), to_actions(ensemble_q))]
    difference = float(jnp.abs(gradients[0] - gradients[1]).max())
    print(f"\n{rows} rows | to the actions (ms) | to the parameters (ms)\n---|---|---\n"
          f"wsrl | {wsrl[0]:.2f} | {wsrl[1]:.2f}\naffine | {affine[0]:.2f} | {affine[1]:.2f}\n"
          f"members | {members:.2f} | (max difference from wsrl {difference:.1e})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per pass")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; {MEMBERS} critics {args.layers}x{args.hidden}")
    model = nets.CriticEnsemble(MEMBERS, (args.hidden,) * args.layers)
    for rows in args.rows:
        profile(model, rows, args.seconds)


if __name__ == "__main__":
    main()
