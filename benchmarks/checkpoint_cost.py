"""Size and time of one checkpoint of a full-size locomotion fine-tuning run, and the time to read it back.

Run by hand:  .venv/bin/python benchmarks/checkpoint_cost.py [--rows 250000] [--env Hopper-v5]
The agent is the `locomotion` preset's online learner (10 critics, 2x256); the buffer holds `--rows` real
transitions of the environment (the random recipe's rollouts, repeated to fill the rows), written the way the online
loop writes them (checkpoint.save with the compressed buffer rows and loop.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np

from wsrl import checkpoint
from wsrl.agents.sac import SACAgent
from wsrl.collect.recipes import rollouts
from wsrl.data.transitions import Episode, from_episodes
from wsrl.presets import online_preset


def transitions(env_id: str, steps: int) -> dict[str, np.ndarray]:
    """`steps` uniform-random transitions of `env_id`, as the buffer stores them (the random recipe's rollouts)."""
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    episodes = rollouts(env, lambda obs: rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32), steps,
                        seed=0, label="collecting")
    fields = [f.name for f in dataclasses.fields(Episode)]
    rows = from_episodes([Episode(**{k: e[k] for k in fields}) for e in episodes]).as_dict()
    return {k: v for k, v in rows.items() if k != "dones"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--collect", type=int, default=20_000, help="real env steps, repeated to fill --rows")
    args = parser.parse_args()

    real = transitions(args.env, args.collect)
    reps = -(-args.rows // args.collect)
    rows = {k: np.concatenate([v] * reps)[:args.rows] for k, v in real.items()}
    rows["pointer"] = np.asarray(0)
    obs_dim, action_dim = rows["observations"].shape[1], rows["actions"].shape[1]
    agent = SACAgent.create(online_preset("locomotion").agent, obs_dim, action_dim, seed=0)
    jax.block_until_ready(agent)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "checkpoints" / f"step_{args.rows}"
        start = time.perf_counter()
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **rows)
        compressed = time.perf_counter()
        checkpoint.save(agent, directory, checkpoint.metadata(agent, obs_dim, action_dim, args.env, args.rows),
                        {"buffer.npz": buffer.getvalue(), "loop.json": b"{}"})
        written = time.perf_counter()
        sizes = {p.name: p.stat().st_size for p in directory.iterdir()}
        start_read = time.perf_counter()
        restored = checkpoint.restore(SACAgent.create(agent.config, obs_dim, action_dim, seed=1), directory)
        with np.load(directory / "buffer.npz") as stored:
            back = {k: stored[k] for k in stored}
        read = time.perf_counter() - start_read
    assert all(np.array_equal(back[k], rows[k]) for k in rows)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(agent), strict=True))
    raw = sum(v.nbytes for v in rows.values())
    print(f"{args.env}, {args.rows} buffer rows, locomotion agent (10 critics 2x256, Adam moments, targets)")
    for name, size in sorted(sizes.items()):
        print(f"  {name:14s} {size / 2**20:8.1f} MiB")
    print(f"  total          {sum(sizes.values()) / 2**20:8.1f} MiB (buffer raw {raw / 2**20:.1f} MiB)")
    print(f"write: compress buffer {compressed - start:.2f} s + write files {written - compressed:.2f} s; "
          f"read back (agent + buffer) {read:.2f} s")


if __name__ == "__main__":
    main()
