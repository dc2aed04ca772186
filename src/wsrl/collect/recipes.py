"""`wsrl collect`: make offline datasets in the Minari format with a recipe.

random: uniform actions; policy: rollouts of a checkpoint; sac-ladder: D4RL-style medium / medium-replay /
expert / medium-expert datasets from one SAC training run; waypoint: a maze planner with a noisy PD controller
(PointMaze); demos, dapg, adroit-binary: from the DAPG release (`adroit.py`).

Recipes that train (sac-ladder) run SAC through the Python API, so this package sits above `api`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np

from wsrl import api, checkpoint, rundir
from wsrl._version import __version__
from wsrl.agents import agent_from_meta
from wsrl.collect import adroit
from wsrl.collect.dapg import read_demos, read_policy
from wsrl.collect.minari_writer import write_minari
from wsrl.config import CollectConfig, OnlineConfig, SACConfig
from wsrl.data.loaders import episodes_from_flat, find_minari, minari_root
from wsrl.envs import make_env, space_dims, success_flag
from wsrl.errors import UserError
from wsrl.evaluation import eval_action
from wsrl.runlog import ProgressBar
from wsrl.train.online import BUFFER_FILE
from wsrl.train.resume import resumable

Policy = Callable[[np.ndarray], np.ndarray]


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


LADDER_LEVELS = ("medium", "medium-replay", "expert", "medium-expert")


def ladder_ids(prefix: str) -> dict[str, str]:
    return {level: f"{prefix}/{level}-v0" for level in LADDER_LEVELS}


def _evaluations(run_dir: Path) -> list[tuple[int, float]]:
    """(env step, evaluation return) of every evaluation that has a checkpoint (a policy to roll out)."""
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["env_step"]), float(r["eval_return"])) for r in csv.DictReader(f) if r["eval_return"]
                and (run_dir / "checkpoints" / f"step_{r['env_step']}").is_dir()]


def train_ladder_sac(config: CollectConfig, run_dir: Path, command: str, restart: bool) -> None:
    """SAC for the ladder: up to `config.steps` env steps, ended early once its best evaluation is `ladder_patience`
    steps old (SAC's return can collapse late on long runs; the online loop's --patience), with a snapshot at every
    evaluation; a killed run continues from its newest checkpoint."""
    if not restart and resumable(run_dir):
        if not rundir.is_finished(run_dir):
            api.resume(run_dir, command=command)
        return
    every = config.ladder_eval_every
    sac = SACConfig(num_critics=2, critic_subset=2, subset_with_replacement=False, utd=1, entropy_backup=True,
                    actor_lr=3e-4, temperature_lr=3e-4)  # SAC's 3e-4 throughout (Haarnoja et al. 2018, Table 1)
    # 5000 uniform-random steps first (as RLPD), fewer for short runs.
    online = OnlineConfig(env=config.env, steps=config.steps, seed=config.seed,
                          warmup_steps=min(5000, config.steps // 5), warmup_policy="random", eval_every=every,
                          patience=config.ladder_patience, eval_episodes=5, checkpoint_every=every,
                          keep_checkpoints=0, agent=sac)
    api.run(online, run_dir, overwrite=True, command=command)


LADDER_CANDIDATES, SCORE_EPISODES = 5, 10


def _policy_return(run_dir: Path, step: int, env: gym.Env, seed: int) -> float:
    """Mean return of SCORE_EPISODES episodes of snapshot `step` acting as the datasets' rollouts do (sampled
    actions), on episodes of another seed than theirs."""
    policy = checkpoint_policy(run_dir / "checkpoints" / f"step_{step}", env, np.random.default_rng(seed),
                               stochastic=True)
    returns = []
    obs, _ = env.reset(seed=seed)
    for _ in range(SCORE_EPISODES):
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
        obs, _ = env.reset()
    return float(np.mean(returns))


def _pick_levels(config: CollectConfig, run_dir: Path, evals: list[tuple[int, float]],
                 env: gym.Env) -> tuple[int, int, dict[str, float]]:
    """The expert and medium snapshots, judged as the datasets will act (sampled actions, SCORE_EPISODES episodes):
    SAC's evaluations (5 deterministic episodes) are too noisy to pick by alone (measured: Walker2d's best-evaluated
    snapshot rolled out worse than its medium one). Expert: the best of the LADDER_CANDIDATES best-evaluated
    snapshots; medium: the first snapshot, in training order, whose return reaches `medium_fraction` of the
    expert's (only snapshots whose evaluation reaches it are scored)."""
    score = lambda step: _policy_return(run_dir, step, env, config.seed + 1)  # noqa: E731
    candidates = sorted(evals, key=lambda e: (-e[1], e[0]))[:LADDER_CANDIDATES]
    expert_step, expert = max(((step, score(step)) for step, _ in candidates), key=lambda c: (c[1], -c[0]))
    target = config.medium_fraction * expert
    medium_step, medium = expert_step, expert
    for step, evaluation in evals:
        if step < expert_step and evaluation >= target and (scored := score(step)) >= target:
            medium_step, medium = step, scored
            break
    return medium_step, expert_step, {"medium": medium, "expert": expert}


def sac_ladder(config: CollectConfig, prefix: str, overwrite: bool) -> list[Path]:
    """Train SAC, then write D4RL's levels as PREFIX/LEVEL-v0: `expert` (rollouts of the best snapshot), `medium`
    (of the first snapshot reaching `medium_fraction` of the expert's return; see `_pick_levels`), `medium-replay`
    (the replay buffer up to that snapshot) and `medium-expert` (the medium and expert episodes together).

    Resumable by stage: the SAC run (kept under the Minari root's .wsrl-ladder/) continues from its newest
    checkpoint, and datasets that already exist are kept, so re-running after an interruption continues where it
    stopped.
    """
    ids = ladder_ids(prefix)
    existing = [] if overwrite else [i for i in ids.values() if find_minari(i) is not None]
    if len(existing) == len(ids):
        raise UserError(f"datasets {', '.join(ids.values())} already exist; pass --overwrite to replace them")
    run_dir = minari_root() / ".wsrl-ladder" / prefix
    train_ladder_sac(config, run_dir, f"wsrl collect --recipe sac-ladder ({prefix})", restart=overwrite)
    evals = _evaluations(run_dir)
    env = make_env(config.env)
    medium_step, expert_step, scores = _pick_levels(config, run_dir, evals, env)
    rollout_steps = config.rollout_steps or config.steps
    episodes: dict[str, list[dict[str, np.ndarray]]] = {}

    def level_episodes(level: str) -> list[dict[str, np.ndarray]]:
        if level not in episodes:
            if level == "medium-replay":
                with np.load(checkpoint.resolve(run_dir) / BUFFER_FILE) as stored:
                    flat = {k: stored[k][:medium_step] for k in stored if k != "pointer"}
                flat["terminals"] = flat.pop("masks") == 0
                episodes[level] = [{"observations": e.observations, "actions": e.actions, "rewards": e.rewards,
                                    "terminations": e.terminations, "truncations": e.truncations}
                                   for e in episodes_from_flat(flat)]
            elif level == "medium-expert":
                episodes[level] = level_episodes("medium") + level_episodes("expert")
            else:  # made once: medium-expert holds exactly these episodes
                policy = checkpoint_policy(run_dir / "checkpoints" / f"step_{policy_steps[level]}", env,
                                           np.random.default_rng(config.seed), stochastic=True)
                episodes[level] = rollouts(env, policy, rollout_steps, config.seed, f"collect {level}")
        return episodes[level]

    policy_steps = {"medium": medium_step, "medium-replay": medium_step, "expert": expert_step,
                    "medium-expert": [medium_step, expert_step]}
    written = []
    for level, dataset_id in ids.items():
        if dataset_id in existing:
            continue
        description = {"recipe": "sac-ladder", "level": level, "seed": config.seed, "sac_steps": evals[-1][0],
                       "policy_step": policy_steps[level], "policy_return": scores,
                       "medium_fraction": config.medium_fraction, "wsrl_version": __version__}
        written.append(write_minari(dataset_id, level_episodes(level), env, config.env, description, overwrite))
    return written


def collect(config: CollectConfig, dataset_id: str, from_path: str | None = None,
            overwrite: bool = False) -> list[Path]:
    """Run the recipe and write the dataset(s) (sac-ladder: four, under the prefix `dataset_id`)."""
    config.validate(from_path)
    if config.recipe == "sac-ladder":
        make_env(config.env)  # an unknown env fails before training starts
        return sac_ladder(config, dataset_id, overwrite)
    if find_minari(dataset_id) is not None and not overwrite:
        raise UserError(f"dataset {dataset_id!r} already exists in {minari_root()}; pass --overwrite to replace it")
    env = make_env(config.env)
    env.action_space.seed(config.seed)
    rng = np.random.default_rng(config.seed)
    description = {"recipe": config.recipe, "seed": config.seed, "steps": config.steps, "policy": from_path,
                   "action_noise": config.action_noise, "epsilon": config.epsilon, "wsrl_version": __version__}
    if config.recipe in ("demos", "adroit-binary"):
        task = adroit.adroit_task(config.env)
        if config.recipe == "demos":
            episodes, gap = adroit.replay_demos(env, read_demos(adroit.release_file(from_path, "demos", task)))
            made = {"replay_max_observation_gap": gap}
        else:
            bc_episodes = math.ceil(config.steps / env.spec.max_episode_steps)
            episodes, made = adroit.adroit_binary(env, from_path, task, bc_episodes, config.seed)
        return [write_minari(dataset_id, episodes, env, config.env, {**description, **made}, overwrite)]
    if config.recipe == "random":
        policy: Policy = lambda obs: rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)  # noqa: E731
    elif config.recipe == "waypoint":
        policy = WaypointController(env, rng, config.action_noise)
    elif config.recipe == "dapg":
        policy_file = adroit.release_file(from_path, "policy", adroit.adroit_task(config.env))
        dapg = adroit.dapg_sampler(read_policy(policy_file), env, rng)
        policy = lambda obs: np.clip(dapg(obs), -1.0, 1.0).astype(np.float32)  # noqa: E731
    else:
        policy = checkpoint_policy(from_path, env, rng, config.action_noise, config.epsilon)
    episodes = rollouts(env, policy, config.steps, config.seed, f"collect {config.recipe}")
    return [write_minari(dataset_id, episodes, env, config.env, description, overwrite)]


