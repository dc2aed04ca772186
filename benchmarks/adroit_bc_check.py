"""How good is the data's own behaviour policy, next to a pre-trained one? (docs/reproduce.md §6.2)

Behaviour cloning (`wsrl.collect.adroit.behaviour_clone`) on every transition of a dataset, and optionally a run's
newest policy, each over EPISODES episodes of the binary task with the mean action and with sampled actions:

    MINARI_DATASETS_PATH=... .venv/bin/python benchmarks/adroit_bc_check.py wsrl/door/binary-v0 AdroitHandDoor-v1 \
        [RUN_DIR ...]
"""

import sys

import numpy as np

import wsrl
from wsrl.collect.adroit import behaviour_clone
from wsrl.data.loaders import read_dataset
from wsrl.envs import make_env, success_flag

EPISODES = 20


class Zero:
    """An rng whose normal draws are 0: the BC sampler's mean action."""

    def standard_normal(self, shape):
        return np.zeros(shape)


def success_rate(env, act) -> float:
    hits = []
    for episode in range(EPISODES):
        obs, _ = env.reset(seed=200 + episode)
        done, hit = False, False
        while not done:
            obs, _, terminated, truncated, info = env.step(np.clip(act(obs), -1, 1))
            done, hit = terminated or truncated, hit or bool(success_flag(info))
        hits.append(hit)
    return float(np.mean(hits))


def main() -> None:
    dataset, env_id, *runs = sys.argv[1:]
    raw = read_dataset(dataset)
    observations = np.concatenate([e.observations[:-1] for e in raw.episodes])
    actions = np.concatenate([e.actions for e in raw.episodes])
    env = make_env(env_id, binary_reward=True, terminate_on_success=True)
    clone = behaviour_clone(observations, actions, seed=0)
    rng = np.random.default_rng(0)
    print(f"| policy | mean action | sampled actions |  ({EPISODES} episodes each, {len(observations)} transitions)")
    print("|---|---|---|")
    print(f"| BC on {dataset} | {success_rate(env, lambda o: clone(o, Zero())):.2f} | "
          f"{success_rate(env, lambda o: clone(o, rng)):.2f} |")
    for run in runs:
        rates = [success_rate(env, wsrl.load_policy(run, deterministic=d, seed=1)) for d in (True, False)]
        print(f"| {run} | {rates[0]:.2f} | {rates[1]:.2f} |")


if __name__ == "__main__":
    main()
