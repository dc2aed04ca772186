"""Update throughput of the learners, and achieved FLOP/s against this machine's float32 matmul peak.

Run by hand:  .venv/bin/python benchmarks/throughput.py [--seconds 10] [--hidden 64 128 256 512] [--seeds 1 8]
Prints, for each width, one line per configuration: updates/s, critic gradient steps/s, GFLOP per update and achieved
FLOP/s as a fraction of two peaks measured in the same run: a 2048 x 2048 matmul's, and the same-width chain's (50
products (1024 x w) @ (w x w) with tanh in one jit: what this CPU does on the update's own shapes).
XLA's cost analysis counts a `lax.scan` body once, so the WSRL update (its
`utd` critic steps under a scan) is counted per part: `utd` x one critic step + the actor and temperature step
(`update_flops`; checked against XLA's count of the same update with the scan unrolled, `--check`).
"""

from __future__ import annotations

import argparse
import functools
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from wsrl.agents.common import stack, update_jit, update_seeds
from wsrl.agents.cql import CQLAgent
from wsrl.agents.iql import IQLAgent
from wsrl.agents.sac import SACAgent
from wsrl.config import CQLConfig, IQLConfig, SACConfig

OBS_DIM, ACTION_DIM = 17, 6  # HalfCheetah / Walker2d sizes


def matmul_peak(seconds: float, n: int = 2048) -> float:
    """Best float32 FLOP/s of an n x n matmul in JAX on the default device."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        f(a).block_until_ready()
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def chain_peak(width: int, seconds: float, rows: int = 1024, links: int = 50) -> float:
    """Best FLOP/s of `links` chained (rows x width) @ (width x width) products with tanh, in one jit."""
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    x = jax.random.normal(keys[0], (rows, width), jnp.float32)
    w = jax.random.normal(keys[1], (width, width), jnp.float32) / np.sqrt(width)

    @jax.jit
    def chain(x, w):
        return jax.lax.fori_loop(0, links, lambda _, h: jnp.tanh(h @ w), x, unroll=True)

    chain(x, w).block_until_ready()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        chain(x, w).block_until_ready()
        best = max(best, 2 * rows * width**2 * links / (time.perf_counter() - start))
    return best


@update_jit
def update(agent, batch):
    return agent.update(batch)


def random_batch(size: int, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {"observations": jnp.asarray(rng.normal(size=(size, OBS_DIM)), jnp.float32),
            "mc_returns": jnp.asarray(rng.normal(size=size), jnp.float32),
            "actions": jnp.asarray(rng.uniform(-1, 1, (size, ACTION_DIM)), jnp.float32),
            "rewards": jnp.asarray(rng.normal(size=size), jnp.float32),
            "next_observations": jnp.asarray(rng.normal(size=(size, OBS_DIM)), jnp.float32),
            "masks": jnp.ones(size, jnp.float32)}


def flops_of(fn, *args) -> float:
    """XLA's FLOP count of `fn` compiled for `args`."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost).get("flops", float("nan")))


def update_flops(agent, batch) -> float:
    """The FLOPs of one `agent.update(batch)`: a SAC-family update that scans its `utd` critic steps is counted per
    part (XLA would count the scan body once); any other update as XLA counts it."""
    c = agent.config
    if not isinstance(agent, SACAgent) or (c.utd == 1 and c.step_all_optimizers):
        return flops_of(type(agent).update, agent, batch)
    minibatch = jax.tree.map(lambda x: x[:c.batch_size], batch)
    actor_batch = batch if c.actor_on_full_batch else minibatch
    return (c.utd * flops_of(type(agent).update_critic, agent, minibatch)
            + flops_of(type(agent).update_actor_and_temperature, agent, actor_batch))


def dense_flops(rows: int, dims: list[int]) -> float:
    """Forward matmul FLOPs of an MLP with layer sizes `dims` on `rows` inputs."""
    return 2.0 * rows * sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=False))


def analytic_flops(config: SACConfig) -> float:
    """The matmul FLOPs of one WSRL-style update (shared value head, no max-target backup), counted by hand: a
    backward pass costs one forward for the weights' gradients and one for the inputs' (none for the first layer's
    input, which is data). Elementwise work (LayerNorm, activations, Adam) is left out, so XLA's count is a little
    higher."""
    b, n, k = config.batch_size, config.num_critics, config.critic_subset
    actor = [OBS_DIM, *config.actor_hidden_dims, 2 * ACTION_DIM]  # mean and log-std heads
    critic = [OBS_DIM + ACTION_DIM, *config.critic_hidden_dims, 1]
    first = lambda dims: 2.0 * dims[0] * dims[1]  # noqa: E731 - per row: the first layer's input gradient
    # Critic step: pi(s') forward, K target critics forward, N critics forward and backward (no input gradient).
    critic_step = dense_flops(b, actor) + k * dense_flops(b, critic) + n * (3 * dense_flops(b, critic)
                                                                           - b * first(critic))
    # Actor step on utd * B rows: pi forward and backward, N critics forward and backward to the actions (inputs
    # only); the temperature's entropy estimate: pi forward at s'.
    rows = config.utd * b
    actor_step = (3 * dense_flops(rows, actor) - rows * first(actor) + n * 2 * dense_flops(rows, critic)
                  + dense_flops(rows, actor))
    return config.utd * critic_step + actor_step


def unrolled_flops(agent, batch) -> float:
    """XLA's count of the update with every `lax.scan` unrolled (so that nothing is counted once for many)."""
    with mock.patch.object(jax.lax, "scan", functools.partial(jax.lax.scan, unroll=True)):
        return flops_of(type(agent).update, agent, batch)


def measure(name: str, agent_cls: type, config, seconds: float, peak: float, same_width: float, seeds: int = 0,
            check: bool = False, only: tuple[str, ...] = ()) -> None:
    """`seeds` > 0: that many agents stacked and updated by one call of `update_seeds` (rates summed over seeds;
    FLOPs those of one seed's update). `check`: print the per-part count next to XLA's count of the unrolled update.
    `only`: measure only configurations whose name starts with one of these."""
    if only and not name.startswith(only):
        return
    agent = agent_cls.create(config, OBS_DIM, ACTION_DIM, seed=0)
    batch = random_batch(config.utd * config.batch_size)
    compiled = update.lower(agent, batch).compile()
    cost = compiled.cost_analysis()
    counted = float((cost[0] if isinstance(cost, list) else cost).get("flops", float("nan")))
    flops = update_flops(agent, batch)
    if check:
        unrolled = unrolled_flops(agent, batch)
        by_hand = (f", matmuls by hand {analytic_flops(config) / 1e9:.3f}" if agent_cls is SACAgent
                   and config.num_critics == 10 and config.utd == 4 else "")
        print(f"  {name}: per part {flops / 1e9:.3f} GFLOP, XLA unrolled {unrolled / 1e9:.3f}, XLA as compiled "
              f"(scan once) {counted / 1e9:.3f}{by_hand}")
    if seeds:
        agent = stack([agent_cls.create(config, OBS_DIM, ACTION_DIM, seed=s) for s in range(seeds)])
        batch = jax.tree.map(lambda *x: jnp.stack(x), *[random_batch(config.utd * config.batch_size, s)
                                                        for s in range(seeds)])
        compiled = update_seeds.lower(agent, batch).compile()
    agent, _ = compiled(agent, batch)
    jax.block_until_ready(agent)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent, metrics = compiled(agent, batch)
        count += 1
    jax.block_until_ready(metrics)
    rate = count * max(seeds, 1) / (time.perf_counter() - start)
    print(f"{name:<40} {rate:8.2f} updates/s  {rate * config.utd:8.1f} critic steps/s  "
          f"{flops / 1e9:6.2f} GFLOP/update  {rate * flops / 1e9:7.1f} GFLOP/s = {rate * flops / peak:5.1%} of the "
          f"2048^2 peak, {rate * flops / same_width:5.1%} of the same-width chain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per configuration")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256],
                        help="widths of the MLPs (cpu preset: 64; paper: 256, Adroit / Kitchen 512)")
    parser.add_argument("--layers", type=int, default=2, help="hidden layers (Adroit / Kitchen critics: 3)")
    parser.add_argument("--check", action="store_true", help="print the per-part FLOP count next to XLA's count "
                        "of the update with its scan unrolled")
    parser.add_argument("--only", nargs="+", default=[], help="measure only the configurations whose name starts "
                        "with one of these (e.g. 'WSRL online' 'Cal-QL')")
    parser.add_argument("--seeds", type=int, nargs="*", default=[],
                        help="also the WSRL update of N seeds stacked in one call (update_seeds), for each N given")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()})")
    peak = matmul_peak(min(args.seconds, 5.0))
    print(f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    for width in args.hidden:
        same = chain_peak(width, min(args.seconds, 5.0))
        # Locomotion preset networks: LayerNorm MLPs (256 wide; the cpu preset's 64), 10 critics with subset 2.
        nets = dict(critic_hidden_dims=(width,) * args.layers, actor_hidden_dims=(width,) * 2)
        print(f"networks: critics {args.layers}x{width}, actor 2x{width}; same-width chain peak "
              f"{same / 1e9:.1f} GFLOP/s")
        run = functools.partial(measure, seconds=args.seconds, peak=peak, same_width=same, check=args.check,
                                only=tuple(args.only))
        run("WSRL online (10 critics, UTD 4 x 256)", SACAgent, SACConfig(**nets))
        run("SAC (2 critics, UTD 1 x 256)", SACAgent,
            SACConfig(**nets, num_critics=2, critic_subset=2, subset_with_replacement=False, utd=1))
        run("RLPD (10 critics, UTD 20 x 256)", SACAgent,
            SACConfig(**nets, subset_with_replacement=False, actor_critic_reduction="mean", actor_layer_norm=False,
                      entropy_backup=True, utd=20, shared_value_head=False, last_hidden_init_scale=None,
                      step_all_optimizers=False))
        run("Cal-QL offline (10 critics)", CQLAgent, CQLConfig(**nets, calql=True))
        run("IQL offline (2 critics)", IQLAgent, IQLConfig(**nets))
        if width == 256:  # CORL's Cal-QL (benchmarks/reference_throughput.py): 2 plain MLP critics, actor 3x256
            run("Cal-QL offline (2 critics, CORL shapes)", CQLAgent,
                CQLConfig(critic_hidden_dims=nets["critic_hidden_dims"], actor_hidden_dims=(256,) * 3, calql=True,
                          num_critics=2, subset_with_replacement=False, actor_layer_norm=False,
                          critic_layer_norm=False, max_target_backup=False, last_hidden_init_scale=None,
                          shared_value_head=False))
        for n in args.seeds:
            run(f"WSRL online, {n} seed(s) in one call (total)", SACAgent, SACConfig(**nets), seeds=n)


if __name__ == "__main__":
    main()
