"""Where the WSRL update's time goes: each part compiled alone, timed, and set against its FLOPs.

Run by hand:  .venv/bin/python benchmarks/profile_update.py [--hidden 128 256] [--layers 2] [--seconds 5]
For each width: the whole update (UTD 4), one critic step (256 rows) and the actor + temperature step (1024 rows),
then their pieces: the TD target's forward passes, the critic loss's gradient, the critics' Adam + Polyak step, the
actor loss's gradient, the entropy estimate, the actor's Adam step. Each line: ms per call, share of the whole update's
time (a critic-step piece counted `utd` times), GFLOP (XLA's count of that piece) and GFLOP/s against the same-width
chain peak (`throughput.py`). Pieces compiled alone lose the fusion across their borders, so their times sum to a
little more than the step they come from.
"""

from __future__ import annotations

import argparse
import time

import jax
from throughput import ACTION_DIM, OBS_DIM, chain_peak, flops_of, random_batch, update_flops

from wsrl.agents.sac import SACAgent
from wsrl.config import SACConfig


def seconds_per_call(fn, args, seconds: float) -> float:
    """Best-of-windows mean time per call of the jitted `fn(*args)`, its output discarded."""
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start, n = time.perf_counter(), 0
        while n < 5 or time.perf_counter() - start < 0.2:
            out = compiled(*args)
            n += 1
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - start) / n)
    return best


def parts(agent: SACAgent, batch: dict, minibatch: dict) -> list[tuple[str, int, object, tuple]]:
    """(name, times per update, function, arguments) for the update's two steps and their pieces."""
    key = jax.random.PRNGKey(1)
    c = agent.config
    critic_grads, _ = agent.critic_gradients(minibatch, key)
    actor_grads, _ = agent.actor_gradients(batch, key)
    return [
        ("critic step (256 rows)", c.utd, lambda a, b: a.update_critic(b), (agent, minibatch)),
        ("  TD target: pi(s') + 2 target critics", c.utd, lambda a, b, k: a.next_state_value(b, k),
         (agent, minibatch, key)),
        ("  critic loss + gradient (10 critics; TD target incl.)", c.utd, lambda a, b, k: a.critic_gradients(b, k),
         (agent, minibatch, key)),
        ("  Adam + Polyak (critics; idle actor, temp.)", c.utd, lambda a, g: a.apply(g), (agent, critic_grads)),
        ("actor + temperature step (1024 rows)", 1, lambda a, b: a.update_actor_and_temperature(b), (agent, batch)),
        ("  actor loss gradient (through 10 critics)", 1,
         lambda a, b, k: jax.grad(a.actor_loss, has_aux=True)(a.actor.params, b, k), (agent, batch, key)),
        ("  entropy estimate pi(s')", 1, lambda a, b, k: a.policy_entropy(b, k), (agent, batch, key)),
        ("  Adam (actor, temp.; idle critics)", 1, lambda a, g: a.apply(g), (agent, actor_grads)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--layers", type=int, default=2, help="critic hidden layers")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per piece")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()})")
    for width in args.hidden:
        config = SACConfig(critic_hidden_dims=(width,) * args.layers, actor_hidden_dims=(width,) * 2)
        agent = SACAgent.create(config, OBS_DIM, ACTION_DIM, seed=0)
        batch = random_batch(config.utd * config.batch_size)
        minibatch = {k: v[:config.batch_size] for k, v in batch.items()}
        peak = chain_peak(width, args.seconds)
        print(f"\nwidth {width}: critics {args.layers}x{width}, actor 2x{width}; same-width chain peak "
              f"{peak / 1e9:.1f} GFLOP/s")
        print("| part | ms / call | x per update | share of update | GFLOP / call | % of chain peak |\n"
              "|---|---|---|---|---|---|")
        whole = seconds_per_call(lambda a, b: a.update(b), (agent, batch), args.seconds)
        flops = update_flops(agent, batch)
        print(f"| whole update (UTD {config.utd}) | {whole * 1e3:.2f} | 1 | 100% | {flops / 1e9:.3f} | "
              f"{flops / whole / peak:.0%} |")
        for name, times, fn, fn_args in parts(agent, batch, minibatch):
            t, flops = seconds_per_call(fn, fn_args, args.seconds), flops_of(fn, *fn_args)
            print(f"| {name} | {t * 1e3:.2f} | {times} | {times * t / whole:.0%} | {flops / 1e9:.3f} | "
                  f"{flops / t / peak:.0%} |", flush=True)


if __name__ == "__main__":
    main()
