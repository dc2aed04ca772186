"""`wsrl collect`: make offline datasets in the Minari format with a recipe.

random: uniform actions; policy: rollouts of a checkpoint; sac-ladder: D4RL-style medium / medium-replay /
expert datasets from one SAC training run; waypoint: a maze planner with a noisy PD controller (PointMaze).

A dataset is written under a temporary Minari root and moved into place when complete, so an interrupted
collection leaves no dataset behind.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gymnasium as gym
import jax
import numpy as np

from wsrl import __version__, checkpoint
from wsrl.agents import agent_from_meta
from wsrl.agents.sac import SACConfig
from wsrl.data.loaders import episodes_from_flat, find_minari, minari_root
from wsrl.envs import REFERENCE_SCORES, make_env, space_dims, success_flag, task_family
from wsrl.errors import UserError
from wsrl.evaluation import eval_action
from wsrl.logging import ProgressBar
from wsrl.train.online import OnlineConfig, run_online

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CollectConfig:
    """What to collect, how, and how much."""

    env: str = "Hopper-v5"
    """Gymnasium environment id to collect in."""
    recipe: Literal["random", "policy", "sac-ladder", "waypoint"] = "random"
    """random: uniform actions; policy: rollouts of a wsrl checkpoint (--from); sac-ladder: SAC's medium,
    medium-replay and expert datasets; waypoint: maze planner + noisy PD controller (PointMaze)."""
    steps: int = 100_000
    """Environment steps to record (sac-ladder: SAC training steps)."""
    seed: int = 0
    """Seed of the environment and of the actions: the same seed gives the same dataset."""
    action_noise: float = 0.0
    """policy and waypoint recipes: std of Gaussian noise added to each action."""
    epsilon: float = 0.0
    """policy recipe: probability of replacing the action by a uniform random one."""
    rollout_steps: int = 0
    """sac-ladder: env steps of the medium and expert rollouts (0: as many as --steps)."""
    medium_fraction: float = 1 / 3
    """sac-ladder: 'medium' is the first snapshot whose evaluation reaches this fraction of the best one."""
    ladder_eval_every: int = 5000
    """sac-ladder: evaluate and snapshot the SAC policy every this many steps."""

    def validate(self, from_path: str | None) -> None:
        if self.steps < 1:
            raise UserError(f"--steps must be a positive integer, got {self.steps}")
        if not 0.0 <= self.epsilon <= 1.0 or self.action_noise < 0:
            raise UserError("--epsilon must be in [0, 1] and --action-noise >= 0")
        if not 0.0 < self.medium_fraction <= 1.0 or self.ladder_eval_every < 1 or self.rollout_steps < 0:
            raise UserError("--medium-fraction must be in (0, 1], --ladder-eval-every >= 1, --rollout-steps >= 0")
        if self.recipe == "policy" and from_path is None:
            raise UserError("the policy recipe needs --from RUN_OR_CHECKPOINT (a policy to roll out)")


def checkpoint_policy(path: str | Path, env: gym.Env, rng: np.random.Generator, action_noise: float = 0.0,
                      epsilon: float = 0.0, stochastic: bool = False) -> Policy:
    """A checkpoint's deterministic (or sampled) actions, with optional Gaussian noise and epsilon-uniform mixing."""
    directory, meta = checkpoint.load_for_env(path, *space_dims(env), env.spec.id if env.spec else "the env")
    state = {"agent": checkpoint.restore(agent_from_meta(meta), directory)}
    deterministic = lambda a, o: (a, eval_action(a, o))  # noqa: E731
    sampled = jax.jit(lambda a, o: (lambda out: (out[0], out[1][0]))(a.sample_actions(o[None])))
    act = sampled if stochastic else deterministic

    def policy(obs: np.ndarray) -> np.ndarray:
        state["agent"], action = act(state["agent"], obs)
        action = np.asarray(action)
        if action_noise > 0:
            action = action + action_noise * rng.standard_normal(action.shape)
        if epsilon > 0 and rng.random() < epsilon:
            action = rng.uniform(-1.0, 1.0, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return policy


class WaypointController:
    """Drive a PointMaze ball to random free cells: shortest path over the maze grid (BFS), then a PD
    controller toward the centre of the next cell, plus Gaussian action noise (how D4RL's maze2d data was made).
    """

    P_GAIN, D_GAIN, REACHED = 10.0, 1.0, 0.5

    def __init__(self, env: gym.Env, rng: np.random.Generator, noise: float):
        maze = getattr(env.unwrapped, "maze", None)
        if maze is None or "PointMaze" not in (env.spec.id if env.spec else ""):
            raise UserError("the waypoint recipe drives PointMaze envs only (an AntMaze needs a goal-reaching "
                            "low-level policy); use e.g. --env PointMaze_Medium-v3")
        self.maze, self.rng, self.noise = maze, rng, noise
        grid = np.array(maze.maze_map, dtype=object)
        self.free = {(r, c) for r in range(grid.shape[0]) for c in range(grid.shape[1]) if grid[r, c] != 1}
        self.target: tuple[int, int] | None = None

    def _cell(self, xy: np.ndarray) -> tuple[int, int]:
        return tuple(int(v) for v in self.maze.cell_xy_to_rowcol(xy))

    def _next_cell(self, start: tuple[int, int], goal: tuple[int, int]) -> tuple[int, int]:
        parents: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
        frontier = [start]
        while frontier and goal not in parents:
            nxt = []
            for r, c in frontier:
                for cell in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                    if cell in self.free and cell not in parents:
                        parents[cell] = (r, c)
                        nxt.append(cell)
            frontier = nxt
        cell = goal
        while parents.get(cell) not in (None, start):
            cell = parents[cell]
        return cell

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        pos, vel = obs[:2], obs[2:4]
        target_xy = None if self.target is None else self.maze.cell_rowcol_to_xy(np.array(self.target))
        if target_xy is None or np.linalg.norm(target_xy - pos) < self.REACHED:
            self.target = sorted(self.free)[self.rng.integers(len(self.free))]
        waypoint = self.maze.cell_rowcol_to_xy(np.array(self._next_cell(self._cell(pos), self.target)))
        action = self.P_GAIN * (waypoint - pos) - self.D_GAIN * vel + self.noise * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def rollouts(env: gym.Env, policy: Policy, steps: int, seed: int, label: str) -> list[dict[str, np.ndarray]]:
    """Episodes of `policy` for exactly `steps` env steps; the last one is cut (truncated) at the budget."""
    episodes, obs_list, actions, rewards, terms, truncs, successes = [], [], [], [], [], [], []
    obs, _ = env.reset(seed=seed)
    obs_list.append(obs)
    with ProgressBar(steps, label) as progress:
        for step in range(1, steps + 1):
            action = policy(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            truncated = truncated or step == steps
            obs_list.append(obs)
            actions.append(action)
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated and not terminated)
            successes.append(success_flag(info))
            if terminated or truncated:
                episode = {"observations": np.asarray(obs_list, np.float32), "actions": np.asarray(actions, np.float32),
                           "rewards": np.asarray(rewards, np.float64), "terminations": np.asarray(terms),
                           "truncations": np.asarray(truncs)}
                if successes[0] is not None:  # Minari infos hold the reset's entry and then one per step
                    episode["success"] = np.asarray([False, *map(bool, successes)])
                episodes.append(episode)
                obs_list, actions, rewards, terms, truncs, successes = [], [], [], [], [], []
                if step < steps:
                    obs, _ = env.reset()
                    obs_list.append(obs)
            progress.advance(step)
    return episodes


def write_minari(dataset_id: str, episodes: list[dict[str, np.ndarray]], env: gym.Env, env_id: str,
                 description: dict, overwrite: bool) -> Path:
    """Write `episodes` as Minari dataset `dataset_id` in the Minari root, atomically.

    Actions are stored in the env's own units (as Minari's recover_environment expects); the agents' [-1, 1]
    actions are mapped back by the loader.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    root = minari_root()
    target = root / dataset_id
    tmp_root = root / f".wsrl-tmp-{os.getpid()}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    native = env.unwrapped.action_space
    to_native = lambda a: native.low + (a + 1.0) * 0.5 * (native.high - native.low)  # noqa: E731
    buffers = [EpisodeBuffer(id=i, observations=e["observations"], actions=to_native(e["actions"]).astype(np.float32),
                             rewards=list(e["rewards"]),
                             terminations=list(e["terminations"]), truncations=list(e["truncations"]),
                             infos={"success": e["success"]} if "success" in e else {})
               for i, e in enumerate(episodes)]
    family = task_family(env_id)
    reference = REFERENCE_SCORES.get(family) if family else None
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_root)
    try:
        with warnings.catch_warnings():  # minari asks for author / permalink metadata we do not have
            warnings.simplefilter("ignore")
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env_id, eval_env=env_id, algorithm_name=f"wsrl {description['recipe']}",
                observation_space=env.observation_space, action_space=native,
                ref_min_score=reference[0] if reference else None, ref_max_score=reference[1] if reference else None,
                description=json.dumps(description))
        if target.exists() and overwrite:
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / dataset_id, target)
    except ValueError as e:
        raise UserError(f"cannot write Minari dataset {dataset_id!r}: {e}") from None
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target


def ladder_ids(prefix: str) -> dict[str, str]:
    return {level: f"{prefix}/{level}-v0" for level in ("medium", "medium-replay", "expert")}


def sac_ladder(config: CollectConfig, prefix: str, overwrite: bool) -> list[Path]:
    """Train SAC, then write PREFIX/medium-v0, PREFIX/medium-replay-v0 and PREFIX/expert-v0 (D4RL-style):
    rollouts of the first snapshot reaching `medium_fraction` of the best evaluation, the replay buffer up to
    that snapshot, and rollouts of the best snapshot.

    Resumable by stage: a finished SAC run (kept under the Minari root's .wsrl-ladder/) and datasets that
    already exist are reused, so re-running after an interruption continues where it stopped.
    """

    ids = ladder_ids(prefix)
    existing = [i for i in ids.values() if find_minari(i) is not None]
    if overwrite:
        existing = []
    elif len(existing) == len(ids):
        raise UserError(f"datasets {', '.join(ids.values())} already exist; pass --overwrite to replace them")
    run_dir = minari_root() / ".wsrl-ladder" / prefix
    if overwrite or not (run_dir / "summary.json").is_file():
        sac = SACConfig(num_critics=2, critic_subset=2, subset_with_replacement=False, utd=1, entropy_backup=True)
        # 5000 uniform-random steps first (as RLPD), fewer for short runs.
        online = OnlineConfig(env=config.env, steps=config.steps, seed=config.seed,
                              warmup_steps=min(5000, config.steps // 5),
                              warmup_policy="random", eval_every=config.ladder_eval_every, eval_episodes=5,
                              checkpoint_every=config.ladder_eval_every, agent=sac)
        run_online(online, run_dir, overwrite=True, command=f"wsrl collect --recipe sac-ladder ({prefix})",
                   save_buffer=True)
    with open(run_dir / "metrics.csv") as f:
        evals = [(int(r["env_step"]), float(r["eval_return"])) for r in csv.DictReader(f) if r["eval_return"]
                 and (run_dir / "checkpoints" / f"step_{r['env_step']}").is_dir()]
    best = max(ret for _, ret in evals)
    medium_step = next(step for step, ret in evals if ret >= config.medium_fraction * best)
    # The best snapshot, not the last: SAC's return can fall after its peak on short CPU budgets.
    expert_step = max(step for step, ret in evals if ret == best)
    env = make_env(config.env)
    rollout_steps = config.rollout_steps or config.steps
    written = []
    for level, dataset_id in ids.items():
        if dataset_id in existing:
            continue
        if level == "medium-replay":
            buffer = dict(np.load(run_dir / "replay_buffer.npz"))
            flat = {k: v[:medium_step] for k, v in buffer.items()}
            flat["terminals"] = flat.pop("masks") == 0
            episodes = [{"observations": e.observations, "actions": e.actions, "rewards": e.rewards,
                         "terminations": e.terminations, "truncations": e.truncations}
                        for e in episodes_from_flat(flat)]
            policy_step = medium_step
        else:
            policy_step = medium_step if level == "medium" else expert_step
            rng = np.random.default_rng(config.seed)
            policy = checkpoint_policy(run_dir / "checkpoints" / f"step_{policy_step}", env, rng, stochastic=True)
            episodes = rollouts(env, policy, rollout_steps, config.seed, f"collect {level}")
        description = {"recipe": "sac-ladder", "level": level, "seed": config.seed, "sac_steps": config.steps,
                       "policy_step": policy_step, "best_eval_return": best, "medium_fraction": config.medium_fraction,
                       "wsrl_version": __version__}
        written.append(write_minari(dataset_id, episodes, env, config.env, description, overwrite))
    return written


def collect(config: CollectConfig, dataset_id: str, from_path: str | None = None,
            overwrite: bool = False) -> list[Path]:
    """Run the recipe and write the dataset(s) (sac-ladder: three, under the prefix `dataset_id`)."""
    config.validate(from_path)
    if config.recipe == "sac-ladder":
        make_env(config.env)  # an unknown env fails before training starts
        return sac_ladder(config, dataset_id, overwrite)
    if find_minari(dataset_id) is not None and not overwrite:
        raise UserError(f"dataset {dataset_id!r} already exists in {minari_root()}; pass --overwrite to replace it")
    env = make_env(config.env)
    env.action_space.seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.recipe == "random":
        policy: Policy = lambda obs: rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)  # noqa: E731
    elif config.recipe == "waypoint":
        policy = WaypointController(env, rng, config.action_noise)
    else:
        policy = checkpoint_policy(from_path, env, rng, config.action_noise, config.epsilon)
    episodes = rollouts(env, policy, config.steps, config.seed, f"collect {config.recipe}")
    description = {"recipe": config.recipe, "seed": config.seed, "steps": config.steps, "policy": from_path,
                   "action_noise": config.action_noise, "epsilon": config.epsilon, "wsrl_version": __version__}
    return [write_minari(dataset_id, episodes, env, config.env, description, overwrite)]


def suite_path(name: str) -> Path:
    """A suite file: NAME as a path, or benchmarks/suite/NAME.toml of this source checkout."""
    path = Path(name)
    if path.is_file():
        return path
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "suite" / f"{name}.toml"
    if not path.is_file():
        raise UserError(f"no suite {name!r}: neither a file nor {path}; see benchmarks/suite/ in the wsrl sources")
    return path


def collect_suite(name: str, overwrite: bool = False) -> list[Path]:
    """Collect every dataset a suite lists, skipping those already present (so an interrupted suite resumes)."""
    entries = tomllib.loads(suite_path(name).read_text()).get("dataset", [])
    fields = {f for f in CollectConfig.__dataclass_fields__}
    written = []
    for entry in entries:
        entry = dict(entry)
        dataset_id = entry.pop("id")
        unknown = set(entry) - fields
        if unknown:
            raise UserError(f"suite {name}: unknown keys {sorted(unknown)} in dataset {dataset_id}")
        config = CollectConfig(**entry)
        targets = ladder_ids(dataset_id).values() if config.recipe == "sac-ladder" else [dataset_id]
        if not overwrite and all(find_minari(t) is not None for t in targets):
            print(f"suite {name}: {dataset_id} already collected")
            continue
        start = time.perf_counter()
        written += collect(config, dataset_id, overwrite=overwrite)
        print(f"suite {name}: {dataset_id} ({config.recipe}, {config.env}) took {time.perf_counter() - start:.0f}s")
    return written
