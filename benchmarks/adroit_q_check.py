"""What did a pre-trained Cal-QL / CQL learn on its dataset? (docs/reproduce.md §6.2)

For each run directory (its newest checkpoint) and every transition of the dataset under the run's own reward
convention: how far the deterministic policy's action is from the data's, and the critics' mean Q at the data's
action, at the policy's action and at a uniform random action, next to the Monte-Carlo return-to-go:

    MINARI_DATASETS_PATH=... .venv/bin/python benchmarks/adroit_q_check.py RUN_DIR [RUN_DIR ...]
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from wsrl import checkpoint, rundir
from wsrl.agents import agent_from_meta
from wsrl.config import OfflineConfig, from_dict
from wsrl.data.loaders import read_dataset, to_unit_actions
from wsrl.envs import make_env, native_action_space
from wsrl.train.offline import dataset_transitions


def report(run: str) -> str:
    directory = checkpoint.resolve(run)
    meta = checkpoint.load_meta(directory)
    agent = checkpoint.restore(agent_from_meta(meta), directory)
    config = from_dict(OfflineConfig, rundir.read_config(rundir.members(Path(run))[0]))
    raw = read_dataset(config.dataset)
    raw = to_unit_actions(raw, native_action_space(make_env(config.env)) if config.env else None)
    data = dataset_transitions(config, raw)
    obs, act = jnp.asarray(data.observations), jnp.asarray(data.actions)

    @jax.jit
    def stats(obs, act, key):
        mean, std = agent.policy(obs)
        pi = jnp.tanh(mean)
        rand = jax.random.uniform(key, act.shape, minval=-1.0, maxval=1.0)
        q = {name: agent.q_values(obs, a).mean(0) for name, a in (("data", act), ("pi", pi), ("rand", rand))}
        return {"mse": ((pi - act) ** 2).mean(-1), "std": std.mean(-1), **q}

    parts = [stats(obs[i:i + 4096], act[i:i + 4096], jax.random.PRNGKey(i)) for i in range(0, len(obs), 4096)]
    s = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    mc = data.mc_returns
    return (f"| {run} (step {meta.get('grad_step', meta.get('env_step'))}) | {s['mse'].mean():.3f} | "
            f"{s['std'].mean():.3f} | {s['data'].mean():.1f} | {s['pi'].mean():.1f} | {s['rand'].mean():.1f} | "
            f"{mc.mean():.1f} | {(s['pi'] > s['data']).mean():.2f} | {np.corrcoef(s['data'], mc)[0, 1]:.2f} |")


def main() -> None:
    print("| run | action MSE pi vs data | policy std | Q(s, a_data) | Q(s, pi) | Q(s, uniform) | MC return | "
          "share Q(pi) > Q(data) | corr(Q(data), MC) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in sys.argv[1:]:
        print(report(run), flush=True)


if __name__ == "__main__":
    main()
