"""Online training: warmup with the frozen policy, then one high-UTD update per env step (METHOD.md §2).

`wsrl train` runs this from a random initialisation (SAC fast, RLPD); `wsrl finetune` first restores a
whole checkpoint (WSRL, and the baselines that continue an offline learner). With WSRL the replay buffer
starts empty and never holds offline data; only the retention baselines (`retain`) use the dataset.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from wsrl import __version__, checkpoint
from wsrl.agents import agent_from_meta
from wsrl.agents.cql import CQLAgent
from wsrl.agents.sac import SACAgent, SACConfig
from wsrl.config import to_dict
from wsrl.data.buffer import FIELDS, ReplayBuffer, mixed_batch
from wsrl.data.loaders import read_dataset, task_transitions
from wsrl.data.transitions import return_to_go
from wsrl.envs import make_env, space_dims, success_flag
from wsrl.errors import UserError
from wsrl.evaluation import eval_action, evaluate
from wsrl.logging import ProgressBar, RunLogger

EVAL_SEED_OFFSET = 10_000
# Pre-training state that the online agent does not carry over: the CQL multiplier (METHOD.md §2.1).
OFFLINE_ONLY_STATE = ("cql_lagrange",)


@dataclass(frozen=True)
class OnlineConfig:
    """An online run: environment, budget, warmup, evaluation and logging, plus the learner."""

    env: str = "Hopper-v5"
    """Gymnasium environment id (finetune without --env: the environment the checkpoint was trained for)."""
    steps: int = 250_000
    """Online environment steps in total, warmup included."""
    seed: int = 0
    """Seed of the agent, the environment and the evaluation episodes."""
    warmup_steps: int = 5000
    """Warmup K: env steps collected with the frozen policy before any gradient step."""
    warmup_policy: Literal["pretrained", "random"] = "pretrained"
    """Warmup actions: stochastic samples of the (pre-trained) policy, or uniform random (ablation)."""
    eval_every: int = 20_000
    """Evaluate every this many env steps (also before the first update and at the end)."""
    eval_episodes: int = 20
    """Episodes per evaluation (deterministic policy, unscaled rewards)."""
    log_every: int = 1000
    """Write training metrics every this many env steps."""
    checkpoint_every: int = 0
    """Save a checkpoint every this many env steps (0: only at the end)."""
    buffer_capacity: int = 2_000_000
    """Replay buffer capacity (transitions)."""
    reward_scale: float = 1.0
    """Training-env reward scale (never applied to the evaluation env)."""
    reward_bias: float = 0.0
    """Training-env reward bias (never applied to the evaluation env)."""
    binary_reward: bool = False
    """Rewards -1 / 0 from the env's success flag, in training and evaluation (Adroit binary)."""
    terminate_on_success: bool = False
    """Episodes end at the first success (goal tasks); a success is a true terminal (mask 0)."""
    learner: Literal["sac", "calql", "cql", "iql"] = "sac"
    """Online learner: the ensemble SAC learner (WSRL; a CQL / Cal-QL checkpoint seeds it), or a Cal-QL / CQL /
    IQL checkpoint's own algorithm continued online with its own loss (the baselines)."""
    continued_utd: int = 0
    """Continued offline learner: critic steps per env step (0: the checkpoint's own, 1)."""
    sparse_failure_reward: float | None = None
    """Raw failure reward of a sparse task, for Cal-QL's online returns-to-go (as in pre-training)."""
    jsrl_stages: int = 0
    """JSRL (0: off): the --from policy guides the first h steps of every episode, h starting at the episode limit
    and shrinking by limit / stages whenever an evaluation of guide-then-learner is within --jsrl-tolerance of the
    best one; the learner starts from scratch."""
    jsrl_initial_horizon: int = 0
    """JSRL: guide steps per episode at the start (0: the env's episode limit)."""
    jsrl_tolerance: float = 0.05
    """JSRL: relative tolerance to the best evaluation return for moving to the next (shorter) guide horizon."""
    retain: Literal["none", "mix", "append"] = "none"
    """Offline data kept online: none (WSRL), mixed into every minibatch at --offline-ratio, or appended to the
    online buffer."""
    offline_ratio: float = 0.5
    """With --retain mix: fraction of every minibatch drawn from the offline dataset."""
    dataset: str = ""
    """Offline dataset to retain (Minari id or directory, or D4RL hdf5 file), for --retain mix or append."""
    agent: SACConfig = field(default_factory=SACConfig)
    """The ensemble SAC learner."""

    def validate(self) -> None:
        for name in ("steps", "eval_every", "eval_episodes", "log_every", "buffer_capacity"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        for name in ("warmup_steps", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.offline_ratio <= 1.0:
            raise UserError(f"--offline-ratio must be in [0, 1], got {self.offline_ratio}")
        if min(self.jsrl_stages, self.jsrl_tolerance, self.jsrl_initial_horizon) < 0:
            raise UserError("--jsrl-stages, --jsrl-initial-horizon and --jsrl-tolerance must be >= 0")
        if self.retain != "none" and not self.dataset:
            raise UserError(f"--retain {self.retain} keeps offline data: give it with --dataset")
        try:
            self.agent.validate()
        except ValueError as e:
            raise UserError(f"impossible agent config: {e}") from None


@partial(jax.jit, donate_argnums=(1,))
def _insert_and_act(agent: SACAgent, buffer: ReplayBuffer, transition: dict, obs: jax.Array):
    buffer = buffer.insert(transition)
    agent, action = agent.sample_actions(obs[None])
    return agent, buffer, action[0]


@partial(jax.jit, donate_argnums=(1,), static_argnames=("offline_ratio",))
def _insert_update_and_act(agent: SACAgent, buffer: ReplayBuffer, transition: dict, obs: jax.Array,
                           offline: dict | None, offline_ratio: float, sample_limit: jax.Array | None):
    """The one device call per env step: store, sample utd * batch, high-UTD update, next action."""
    buffer = buffer.insert(transition)
    agent, key = agent.split_rng()
    batch = mixed_batch(key, buffer, offline, agent.config.utd, agent.config.batch_size, offline_ratio,
                        sample_limit)
    offline_fraction = batch.pop("offline").mean()
    agent, metrics = agent.update(batch)
    agent, action = agent.sample_actions(obs[None])
    return agent, buffer, action[0], {**metrics, "offline_fraction": offline_fraction}


@partial(jax.jit, donate_argnums=(0,))
def _set_returns(buffer: ReplayBuffer, idx: jax.Array, values: jax.Array) -> ReplayBuffer:
    return buffer.set_returns(idx, values)


class OnlineReturns:
    """Monte-Carlo returns-to-go of online episodes, for learners whose batches need them (Cal-QL online).

    When an episode ends, its return-to-go (same rule as the dataset's) is written into its buffer rows;
    sampling is limited to the rows of finished episodes (METHOD.md §2.3).
    """

    def __init__(self, first_row: int, gamma: float, failure_reward: float | None, max_length: int, capacity: int):
        self.finished, self.rewards = first_row, []
        self.gamma, self.failure_reward, self.max_length, self.capacity = gamma, failure_reward, max_length, capacity

    def add(self, reward: float) -> None:
        self.rewards.append(reward)

    def end_episode(self, buffer: ReplayBuffer) -> ReplayBuffer:
        values = np.zeros(self.max_length, np.float32)
        n = len(self.rewards)
        values[:n] = return_to_go(np.asarray(self.rewards, np.float32), self.gamma, self.failure_reward)
        idx = np.full(self.max_length, self.capacity, np.int32)  # padding rows are dropped
        idx[:n] = self.finished + np.arange(n)
        self.finished, self.rewards = self.finished + n, []
        return _set_returns(buffer, jnp.asarray(idx), jnp.asarray(values))


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse to clobber an earlier run unless asked to; called only after all input was validated."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out} already holds files; choose another directory or pass --overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def initial_agent(config: OnlineConfig, obs_dim: int, action_dim: int, init_from: str | Path | None = None):
    """The online learner: fresh, or restored whole (optimiser moments and temperature included).

    With learner 'sac', a CQL / Cal-QL checkpoint loads into the ensemble SAC learner of `config.agent`
    (same shapes required, the CQL multiplier dropped). With learner 'cql' or 'iql', a checkpoint of that
    algorithm continues with its own hyperparameters and whole state.
    """
    fresh = SACAgent.create(config.agent, obs_dim, action_dim, config.seed)
    if init_from is None:
        return fresh
    directory, meta = checkpoint.load_for_env(init_from, obs_dim, action_dim, config.env)
    algo = meta.get("algo", "sac")
    if config.learner != "sac":
        if algo != config.learner:
            raise UserError(f"--method {config.learner} continues a {config.learner} checkpoint, but {directory} "
                            f"holds {algo}; pre-train with --algo {config.learner}")
        agent = checkpoint.restore(agent_from_meta(meta, config.seed), directory)
        if config.continued_utd:
            agent = agent.replace(config=dataclasses.replace(agent.config, utd=config.continued_utd))
        return agent
    if algo == "iql":
        raise UserError(f"checkpoint {directory} is IQL, whose Gaussian policy cannot seed the SAC learner; "
                        "continue it with --method iql")
    return checkpoint.restore(fresh, directory, drop=OFFLINE_ONLY_STATE)


def retained_data(config: OnlineConfig, obs_dim: int, action_dim: int) -> dict[str, np.ndarray] | None:
    """The offline transitions a retention method keeps, under the training env's reward convention."""
    if config.retain == "none":
        return None
    data = task_transitions(read_dataset(config.dataset), config.reward_scale, config.reward_bias,
                            config.agent.gamma, config.binary_reward, config.sparse_failure_reward,
                            config.terminate_on_success)
    if (data.observations.shape[1], data.actions.shape[1]) != (obs_dim, action_dim):
        raise UserError(f"dataset {config.dataset} has observation/action dims {data.observations.shape[1]}/"
                        f"{data.actions.shape[1]}, {config.env} has {obs_dim}/{action_dim}; retain data of this env")
    return {k: v for k, v in data.as_dict().items() if k in FIELDS}


def run_online(config: OnlineConfig, out: str | Path, init_from: str | Path | None = None,
               overwrite: bool = False, command: str = "", save_buffer: bool = False) -> dict[str, Any]:
    """Train online into run directory `out`; returns the summary also written to summary.json.

    `save_buffer` also writes the replay buffer's transitions, oldest first, to replay_buffer.npz.
    """
    config.validate()
    out = Path(out)
    task = {"binary_reward": config.binary_reward, "terminate_on_success": config.terminate_on_success}
    env = make_env(config.env, config.reward_scale, config.reward_bias, **task)
    eval_env = make_env(config.env, **task)
    obs_dim, action_dim = space_dims(env)
    guide = None
    if config.jsrl_stages:
        if init_from is None:
            raise UserError("JSRL needs a guide policy: give the pre-trained checkpoint with --from")
        guide, agent = initial_agent(config, obs_dim, action_dim, init_from), initial_agent(config, obs_dim, action_dim)
    else:
        agent = initial_agent(config, obs_dim, action_dim, init_from)
    offline = retained_data(config, obs_dim, action_dim)
    appended = len(offline["rewards"]) if offline is not None and config.retain == "append" else 0
    if isinstance(agent, CQLAgent) and agent.config.calql and config.buffer_capacity < config.steps + appended:
        raise UserError("Cal-QL online keeps every episode's returns: --buffer-capacity must hold all steps")
    prepare_run_dir(out, overwrite)
    (out / "config.json").write_text(json.dumps(
        {"command": command, "init_from": None if init_from is None else str(init_from),
         "learner": type(agent).__name__, "wsrl_version": __version__, "jax_backend": jax.default_backend(),
         "config": to_dict(config)},
        indent=2))
    logger = RunLogger(out)
    try:
        summary = _loop(config, agent, env, eval_env, obs_dim, action_dim, logger, out, save_buffer, offline, guide)
    finally:
        logger.close()
        env.close()
        eval_env.close()
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _loop(config: OnlineConfig, agent: SACAgent, env, eval_env, obs_dim: int, action_dim: int,
          logger: RunLogger, out: Path, save_buffer: bool, offline: dict[str, np.ndarray] | None,
          guide: SACAgent | None) -> dict[str, Any]:
    rng = np.random.default_rng(config.seed)
    appended = len(offline["rewards"]) if offline is not None and config.retain == "append" else 0
    buffer = ReplayBuffer.create(obs_dim, action_dim, min(config.buffer_capacity, config.steps + appended))
    if appended:
        buffer = buffer.extend(offline)
    mix = offline is not None and config.retain == "mix"
    offline_device = jax.device_put(offline) if mix else None
    offline_ratio = config.offline_ratio if mix else 0.0
    grad_step_at_start = int(agent.critic.step)
    # JSRL: the guide acts for the first `horizon` steps of each episode (METHOD.md §5).
    limit = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000
    horizon = (config.jsrl_initial_horizon or limit) if guide is not None else 0
    best_eval, episode_step = -np.inf, 0
    train_episodes, train_successes, episode_success = 0, 0, None
    # Updates start once the step count exceeds max(K, one full UTD batch), and for learners that need
    # Monte-Carlo returns also one full episode (METHOD.md §2.3).
    returns = None
    if isinstance(agent, CQLAgent) and agent.config.calql:
        failure = None if config.sparse_failure_reward is None else (
            config.reward_scale * config.sparse_failure_reward + config.reward_bias)
        returns = OnlineReturns(appended, agent.config.gamma, failure, limit, buffer.capacity)
    first_update_step = max(config.warmup_steps, agent.config.utd * agent.config.batch_size,
                            limit if returns is not None else 0) + 1
    start = time.perf_counter()
    metrics: dict[str, jax.Array] = {}
    last_eval: dict[str, float] = {}
    episode_return, last_episode_return = 0.0, None

    def row(env_step: int, extra: dict[str, float]) -> dict[str, Any]:
        elapsed = time.perf_counter() - start
        return {"env_step": env_step, "grad_step": int(agent.critic.step) - grad_step_at_start,
                "phase": "warmup" if env_step <= config.warmup_steps else "online",
                "wall_time": elapsed, "env_steps_per_s": env_step / max(elapsed, 1e-9), **extra}

    def run_eval(env_step: int) -> None:
        nonlocal last_eval, horizon, best_eval
        last_eval = evaluate(agent, eval_env, config.eval_episodes, config.seed + EVAL_SEED_OFFSET, config.env,
                             guide=guide, guide_steps=horizon)
        logger.log(row(env_step, {**last_eval, **({"jsrl_horizon": horizon} if guide is not None else {})}))
        score = last_eval["eval_return"]
        if guide is not None and env_step > 0 and score >= best_eval - config.jsrl_tolerance * abs(best_eval):
            horizon = max(0, horizon - -(-limit // config.jsrl_stages))
        best_eval = max(best_eval, score)

    def save(env_step: int) -> None:
        grad_step = int(agent.critic.step)
        checkpoint.save(agent, out / "checkpoints" / f"step_{env_step}",
                        checkpoint.metadata(config.learner, agent.config, obs_dim, action_dim, config.env, env_step,
                                            grad_step))

    run_eval(0)
    obs, _ = env.reset(seed=config.seed)
    env.action_space.seed(config.seed)
    agent, action = agent.sample_actions(obs[None])
    action = np.asarray(action[0])
    with ProgressBar(config.steps, "online") as progress:
        for env_step in range(1, config.steps + 1):
            if env_step <= config.warmup_steps and config.warmup_policy == "random":
                action = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
            if episode_step < horizon:
                action = np.asarray(eval_action(guide, obs))
            episode_step += 1
            next_obs, reward, terminated, truncated, info = env.step(action)
            transition = {"observations": obs, "actions": action, "rewards": np.float32(reward),
                          "next_observations": next_obs, "masks": np.float32(not terminated)}
            episode_return += float(info.get("raw_reward", reward))
            if returns is not None:
                returns.add(float(reward))
            success = success_flag(info)
            episode_success = None if success is None else bool(episode_success) or success
            if terminated or truncated:
                last_episode_return, episode_return, episode_step = episode_return, 0.0, 0
                train_episodes += 1
                train_successes += bool(episode_success)
                episode_success = None
                next_obs, _ = env.reset()
            obs = next_obs
            if env_step >= first_update_step:
                limit_rows = None if returns is None else jnp.asarray(returns.finished)
                agent, buffer, action, metrics = _insert_update_and_act(agent, buffer, transition, obs, offline_device,
                                                                        offline_ratio=offline_ratio,
                                                                        sample_limit=limit_rows)
            else:
                agent, buffer, action = _insert_and_act(agent, buffer, transition, obs)
            if returns is not None and episode_step == 0:  # the episode that ended at this step is now in the buffer
                buffer = returns.end_episode(buffer)
            action = np.asarray(action)

            if env_step % config.log_every == 0:
                logger.log(row(env_step, {"episode_return": last_episode_return,
                                          **{k: float(v) for k, v in metrics.items()}}))
            if env_step % config.eval_every == 0 or env_step == config.steps:
                run_eval(env_step)
            if config.checkpoint_every and env_step % config.checkpoint_every == 0:
                save(env_step)
            progress.advance(env_step, last_eval.get("eval_return"))
    if not (config.checkpoint_every and config.steps % config.checkpoint_every == 0):
        save(config.steps)
    if save_buffer:
        np.savez(out / "replay_buffer.npz", **buffer.transitions())
    elapsed = time.perf_counter() - start
    return {"env": config.env, "env_steps": config.steps,
            "grad_steps": int(agent.critic.step) - grad_step_at_start, "wall_time_s": elapsed,
            "env_steps_per_s": config.steps / elapsed, "last_train_episode_return": last_episode_return,
            "train_episodes": train_episodes, "train_successes": train_successes, "final_eval": last_eval}
