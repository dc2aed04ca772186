"""Can the pre-training's actor network fit the data in the pre-training's budget? (docs/reproduce.md §6.2)

Behaviour cloning with the run's own actor (`wsrl.agents.sac.actor_module`: LayerNorm MLP, tanh-squashed mean) and
its own optimiser (Adam at the actor's learning rate, batch 256), minimising the squared error of the deterministic
action tanh(mean) to the data's action, for each hidden width given; success of the deterministic policy over
EPISODES episodes of the binary task at a few step counts:

    MINARI_DATASETS_PATH=... .venv/bin/python benchmarks/adroit_actor_fit.py wsrl/door/binary-v0 AdroitHandDoor-v1 \
        --widths 128 512 --lrs 1e-4 --steps 20000
"""

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsrl.agents.sac import actor_module
from wsrl.data.loaders import read_dataset
from wsrl.envs import make_env
from wsrl.presets import offline_preset

EPISODES = 20


def success_rate(env, act) -> float:
    hits = []
    for episode in range(EPISODES):
        obs, _ = env.reset(seed=200 + episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            done = terminated or truncated
        hits.append(bool(terminated))  # the binary task ends an episode at success only
    return float(np.mean(hits))


def fit(obs, act, width: int, lr: float, steps: int, checkpoints: list[int], env, seed: int = 0) -> list[tuple]:
    agent_config = dataclasses.replace(offline_preset("adroit").agent, actor_hidden_dims=(width, width))
    net = actor_module(agent_config, act.shape[1])
    params = net.init(jax.random.PRNGKey(seed), obs[:1])["params"]
    optimiser = optax.adam(lr)
    x, y = jnp.asarray(obs), jnp.asarray(np.clip(act, -1, 1))

    def loss(p, xb, yb):
        mean, _ = net.apply({"params": p}, xb)
        return jnp.mean((jnp.tanh(mean) - yb) ** 2)

    @jax.jit
    def train(carry, keys):
        def step(carry, k):
            p, opt = carry
            idx = jax.random.randint(k, (256,), 0, len(x))
            grads = jax.grad(loss)(p, x[idx], y[idx])
            updates, opt = optimiser.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), None
        return jax.lax.scan(step, carry, keys)[0]

    act_fn = jax.jit(lambda p, o: jnp.clip(jnp.tanh(net.apply({"params": p}, o[None])[0][0]), -0.99999, 0.99999))
    carry, done, rows = (params, optimiser.init(params)), 0, []
    key = jax.random.PRNGKey(seed + 1)
    for target in checkpoints:
        key, sub = jax.random.split(key)
        carry = train(carry, jax.random.split(sub, target - done))
        done = target
        mse = float(jnp.mean(jnp.concatenate([(jnp.tanh(net.apply({"params": carry[0]}, x[i:i + 4096])[0])
                                               - y[i:i + 4096]) ** 2 for i in range(0, len(x), 4096)])))
        rate = success_rate(env, lambda o, p=carry[0]: np.asarray(act_fn(p, jnp.asarray(o, jnp.float32))))
        rows.append((width, lr, target, mse, rate))
        print(f"| 2 x {width} | {lr:g} | {target} | {mse:.4f} | {rate:.2f} |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("env")
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4])
    parser.add_argument("--steps", type=int, default=20000)
    args = parser.parse_args()
    raw = read_dataset(args.dataset)
    obs = np.concatenate([e.observations[:-1] for e in raw.episodes]).astype(np.float32)
    act = np.concatenate([e.actions for e in raw.episodes]).astype(np.float32)
    env = make_env(args.env, binary_reward=True, terminate_on_success=True)
    checkpoints = sorted({args.steps // 4, args.steps // 2, args.steps})
    print(f"| actor | Adam lr | steps | action MSE on the data | success ({EPISODES} episodes, tanh(mean)) |")
    print("|---|---|---|---|---|")
    for width in args.widths:
        for lr in args.lrs:
            fit(obs, act, width, lr, args.steps, checkpoints, env)


if __name__ == "__main__":
    main()
