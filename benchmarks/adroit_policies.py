"""Success rate and return of the DAPG release's expert policies in gymnasium-robotics' AdroitHand*-v1 envs, with
mean actions and with sampled actions (as D4RL's expert data was rolled out): docs/reproduce.md §6.1.

    python benchmarks/adroit_policies.py /path/to/hand_dapg [--episodes 20]
"""

import argparse

import numpy as np

from wsrl.collect.adroit import dapg_sampler, policy_rollouts, release_file
from wsrl.collect.dapg import read_policy
from wsrl.envs import make_env, normalized_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", help="a checkout of github.com/aravindr93/hand_dapg")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    print("| task | actions | success | return | normalised score |\n|---|---|---|---|---|")
    for task in ("door", "pen", "relocate", "hammer"):
        env_id = f"AdroitHand{task.capitalize()}-v1"
        env, policy = make_env(env_id), read_policy(release_file(args.release, "policy", task))
        sampled = dapg_sampler(policy, env, np.random.default_rng(0))
        for name, act in (("mean", policy.mean), ("sampled", sampled)):
            episodes = policy_rollouts(env, act, args.episodes, 0, f"{task} {name}")
            success = np.mean([e["success"].any() for e in episodes])
            ret = np.mean([e["rewards"].sum() for e in episodes])
            print(f"| {task} | {name} | {success:.2f} | {ret:.0f} | {normalized_score(env_id, ret):.1f} |")


if __name__ == "__main__":
    main()
