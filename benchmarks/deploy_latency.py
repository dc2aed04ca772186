"""Per-action latency of `wsrl.deploy.NumpyPolicy` (numpy alone) next to the jitted JAX actor, on one observation,
at the paper's actor shapes (docs/robots.md). Run on one core, as a robot's control process would:

    taskset -c 0 env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        XLA_FLAGS=--xla_cpu_multi_thread_eigen=false .venv/bin/python benchmarks/deploy_latency.py
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from wsrl import deploy
from wsrl.deploy import NumpyPolicy
from wsrl.nets import TanhGaussianPolicy

SHAPES = {"Adroit (actor 2 x 512, obs 39, act 28)": (39, 28, (512, 512)),
          "locomotion (actor 2 x 256, obs 17, act 6)": (17, 6, (256, 256))}


def timed(fn, obs, seconds=2.0) -> float:
    """Median seconds per call over `seconds` of calls (after a warm-up)."""
    for _ in range(20):
        fn(obs)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn(obs)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> tuple[float, float]:
    """Seconds per action of the numpy policy and of the jitted JAX actor with the same (random) weights."""
    module = TanhGaussianPolicy(act_dim, hidden)
    params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, obs_dim)))["params"]
    policy = NumpyPolicy(deploy.actor_arrays(params, -np.ones(act_dim), np.ones(act_dim), squash=True))
    act = jax.jit(lambda o: jnp.tanh(module.apply({"params": params}, o[None])[0][0]))
    obs = np.random.default_rng(0).normal(size=obs_dim).astype(np.float32)
    np.testing.assert_allclose(policy(obs), np.clip(np.asarray(act(obs)), -0.99999, 0.99999), atol=1e-5)
    return timed(policy, obs), timed(lambda o: np.asarray(act(o)), obs)


def main() -> None:
    print("| actor | numpy (wsrl.deploy) | JAX (jitted, incl. transfer) |\n|---|---|---|")
    for name, shape in SHAPES.items():
        numpy_s, jax_s = measure(*shape)
        print(f"| {name} | {numpy_s * 1e6:.0f} µs | {jax_s * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()
