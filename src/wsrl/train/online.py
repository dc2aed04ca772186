"""Online training: warmup with the frozen policy, then one high-UTD update per env step (docs/method.md §2).

`wsrl train` runs this from a random initialisation (SAC fast, RLPD); `wsrl finetune` first restores a
whole checkpoint (WSRL, and the baselines that continue an offline learner). With WSRL the replay buffer
starts empty and never holds offline data.

The loop is written over an explicit `LoopState` (everything that changes during a run) and pluggable pieces:
action sources (`sources.RandomWarmup`, `sources.GuidedStart` on top of the policy's own samples) and a
`sources.BatchSource` (online buffer, optionally mixed with offline data, optionally limited to finished
episodes).
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from wsrl import checkpoint
from wsrl.agents import agent_from_meta
from wsrl.agents.common import Agent
from wsrl.agents.sac import SACAgent
from wsrl.config import OnlineConfig
from wsrl.data.buffer import ReplayBuffer, mixed_batch
from wsrl.envs import make_env, space_dims, success_flag
from wsrl.errors import Diverged, Stopped, UserError
from wsrl.evaluation import evaluate
from wsrl.runlog import ProgressBar, RunLogger
from wsrl.train import rundir
from wsrl.train.lifecycle import (
    CheckpointClock,
    StopRequest,
    check_metrics,
    check_parameters,
    stop_signals,
)
from wsrl.train.sources import (
    ActionSource,
    BatchSource,
    EpisodeReturns,
    GuidedStart,
    action_sources,
    batch_source,
)

# Pre-training state that the online agent does not carry over: the CQL multiplier (docs/method.md §2.1).
OFFLINE_ONLY_STATE = ("cql_lagrange",)
LOOP_FILE, BUFFER_FILE, GUIDE_FILE = "loop.json", "buffer.npz", "guide.msgpack"
LOOP_FORMAT = 1  # version of what loop.json holds; `wsrl resume` refuses another


@dataclass
class EpisodeStats:
    """The running training episode and the counts over finished ones (raw, unscaled rewards)."""

    length: int = 0
    raw_return: float = 0.0
    success: bool | None = None
    last_return: float | None = None
    finished: int = 0
    successes: int = 0

    def record(self, raw_reward: float, success: bool | None) -> None:
        self.length += 1
        self.raw_return += raw_reward
        self.success = None if success is None else bool(self.success) or success

    def end(self) -> None:
        self.last_return = self.raw_return
        self.finished += 1
        self.successes += bool(self.success)
        self.length, self.raw_return, self.success = 0, 0.0, None


@dataclass
class LoopState:
    """Everything an online run changes as it goes: what a checkpoint must hold to continue it exactly."""

    agent: Agent
    buffer: ReplayBuffer
    obs: np.ndarray
    action: np.ndarray  # the policy's sample for `obs`, computed by the previous device call
    np_rng: np.random.Generator  # random warmup actions
    grad_step_at_start: int
    env_step: int = 0
    # The training env's position: its rng state before the running episode's reset (None: the first, seeded
    # reset) and the actions taken since; replaying them from that reset restores the env exactly.
    env_reset_rng: dict | None = None
    episode_actions: list[np.ndarray] = field(default_factory=list)
    wall_time_before: float = 0.0  # seconds spent before the last resume
    episode: EpisodeStats = field(default_factory=EpisodeStats)
    returns: EpisodeReturns | None = None  # Monte-Carlo returns of online episodes (Cal-QL online)
    guide_horizon: int = 0  # JSRL: guide steps at the start of each episode
    best_eval: float = -np.inf
    last_eval: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, jax.Array] = field(default_factory=dict)


@dataclass(frozen=True)
class OnlineRun:
    """What stays fixed during a run: config, environments, output, and the method's pieces."""

    config: OnlineConfig
    env: gym.Env
    eval_env: gym.Env
    logger: RunLogger
    out: Path
    actions: tuple[ActionSource, ...]
    batches: BatchSource
    first_update_step: int
    clock: CheckpointClock
    stop: StopRequest
    started: float = field(default_factory=time.perf_counter)

    @property
    def guide(self) -> Agent | None:
        """JSRL's guide policy, if the run has one (evaluations then also start with it)."""
        return next((a.guide for a in self.actions if isinstance(a, GuidedStart)), None)


@partial(jax.jit, donate_argnums=(1,))
def _insert_and_act(agent: Agent, buffer: ReplayBuffer, transition: dict, obs: jax.Array):
    buffer = buffer.insert(transition)
    agent, action = agent.sample_actions(obs[None])
    return agent, buffer, action[0]


@partial(jax.jit, donate_argnums=(1,), static_argnames=("offline_ratio",))
def _insert_update_and_act(agent: Agent, buffer: ReplayBuffer, transition: dict, obs: jax.Array,
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


def initial_agent(config: OnlineConfig, obs_dim: int, action_dim: int, init_from: str | Path | None = None) -> Agent:
    """The online learner: fresh, or restored whole (optimiser moments and temperature included).

    With the SAC learner, a CQL / Cal-QL checkpoint loads into the ensemble SAC learner of `config.agent`
    (same shapes required, the CQL multiplier dropped). With a continued learner, a checkpoint of that
    algorithm continues with its own hyperparameters and whole state.
    """
    continued = config.continued
    if init_from is None:
        return SACAgent.create(config.agent, obs_dim, action_dim, config.seed)
    directory, meta = checkpoint.load_for_env(init_from, obs_dim, action_dim, config.env)
    algo = meta.get("algo", "sac")
    if continued is not None:
        if algo != continued.algo:
            raise UserError(f"--method {continued.algo} continues a {continued.algo} checkpoint, but {directory} "
                            f"holds {algo}; pre-train with --algo {continued.algo}")
        agent = checkpoint.restore(agent_from_meta(meta, config.seed), directory)
        if continued.continued_utd:
            agent = agent.replace(config=dataclasses.replace(agent.config, utd=continued.continued_utd))
        return agent
    if algo == "iql":
        raise UserError(f"checkpoint {directory} is IQL, whose Gaussian policy cannot seed the SAC learner; "
                        "continue it with --method iql")
    fresh = SACAgent.create(config.agent, obs_dim, action_dim, config.seed)
    return checkpoint.restore(fresh, directory, drop=OFFLINE_ONLY_STATE)


def run_online(config: OnlineConfig, out: str | Path, init_from: str | Path | None = None,
               overwrite: bool = False, command: str = "", save_buffer: bool = False) -> dict[str, Any]:
    """Train online into run directory `out`; returns the summary also written to summary.json.

    `save_buffer` also writes the replay buffer's transitions, oldest first, to replay_buffer.npz.
    """
    config.validate()
    out = Path(out)
    env, eval_env = _make_envs(config)
    obs_dim, action_dim = space_dims(env)
    if config.jsrl is not None and init_from is None:
        raise UserError("JSRL needs a guide policy: give the pre-trained checkpoint with --from")
    guide = initial_agent(config, obs_dim, action_dim, init_from) if config.jsrl is not None else None
    agent = initial_agent(config, obs_dim, action_dim, None if config.jsrl is not None else init_from)
    batches = batch_source(config, agent, obs_dim, action_dim, _episode_limit(env))
    rundir.prepare(out, overwrite)
    rundir.write_config(out, config, command, kind="online", init_from=None if init_from is None else str(init_from),
                        learner=type(agent).__name__)
    with stop_signals() as stop:
        run = _online_run(config, env, eval_env, RunLogger(out), out, agent, guide, batches, stop)
        return _execute(run, lambda: _start(run, agent), save_buffer)


def resume_online(out: Path, config: OnlineConfig, directory: Path, on_start: Callable[[], None]) -> dict[str, Any]:
    """Continue the run in `out` from its checkpoint `directory` (written by `_save`) up to `config.steps`;
    `on_start` runs once all input was checked."""
    config.validate()
    env, eval_env = _make_envs(config)
    obs_dim, action_dim = space_dims(env)
    directory, meta = checkpoint.load_for_env(directory, obs_dim, action_dim, config.env)
    record = _read_loop(directory)
    agent = checkpoint.restore(agent_from_meta(meta), directory)
    guide = None
    if config.jsrl is not None:
        guide = checkpoint.restore(agent_from_meta(meta), directory, agent_file=GUIDE_FILE)
    batches = batch_source(config, agent, obs_dim, action_dim, _episode_limit(env))
    capacity = min(config.buffer_capacity, config.steps + batches.appended)
    buffer = _read_buffer(directory, ReplayBuffer.create(obs_dim, action_dim, capacity))
    on_start()
    logger = RunLogger(out, resume_at=(record["metrics_bytes"], record["env_step"]))
    with stop_signals() as stop:
        run = _online_run(config, env, eval_env, logger, out, agent, guide, batches, stop)
        return _execute(run, lambda: _restore(run, agent, buffer, record), False)


def _make_envs(config: OnlineConfig) -> tuple[gym.Env, gym.Env]:
    task = {"binary_reward": config.binary_reward, "terminate_on_success": config.terminate_on_success}
    return make_env(config.env, config.reward_scale, config.reward_bias, **task), make_env(config.env, **task)


def _episode_limit(env: gym.Env) -> int:
    return env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000


def _online_run(config: OnlineConfig, env: gym.Env, eval_env: gym.Env, logger: RunLogger, out: Path, agent: Agent,
                guide: Agent | None, batches: BatchSource, stop: StopRequest) -> OnlineRun:
    # Updates start once the step count exceeds max(K, one full UTD batch), and for learners that need
    # Monte-Carlo returns also one full episode (docs/method.md §2.3).
    first_update = max(config.warmup_steps, agent.config.utd * agent.config.batch_size,
                       _episode_limit(env) if batches.returns is not None else 0) + 1
    actions = action_sources(config, space_dims(env)[1], guide, _episode_limit(env))
    return OnlineRun(config, env, eval_env, logger, out, actions, batches, first_update,
                     CheckpointClock(config.checkpoint_every, config.checkpoint_minutes), stop)


def _execute(run: OnlineRun, begin: Any, save_buffer: bool) -> dict[str, Any]:
    """Run the loop from the state `begin()` gives, write the final checkpoint and summary.json."""
    try:
        state = begin()
        _loop(run, state)
        _save(run, state)
    except Diverged as e:
        rundir.write_summary(run.out, {**_summary(run, state), "diverged": {"step": e.step, "quantity": e.quantity}})
        raise
    finally:
        run.logger.close()
        run.env.close()
        run.eval_env.close()
    if save_buffer:
        np.savez(run.out / "replay_buffer.npz", **state.buffer.transitions())
    summary = _summary(run, state)
    rundir.write_summary(run.out, summary)
    return summary


def _start(run: OnlineRun, agent: Agent) -> LoopState:
    """The state before the first env step: empty buffer (plus appended data), first observation and action."""
    config = run.config
    obs_dim, action_dim = space_dims(run.env)
    buffer = ReplayBuffer.create(obs_dim, action_dim, min(config.buffer_capacity, config.steps + run.batches.appended))
    buffer = run.batches.fill(buffer)
    obs, _ = run.env.reset(seed=config.seed)
    run.env.action_space.seed(config.seed)
    horizon = (config.jsrl.jsrl_initial_horizon or _episode_limit(run.env)) if config.jsrl else 0
    state = LoopState(agent, buffer, obs, np.zeros(action_dim, np.float32), np.random.default_rng(config.seed),
                      int(agent.critic.step), returns=run.batches.new_returns(), guide_horizon=horizon)
    _evaluate(run, state)
    state.agent, action = state.agent.sample_actions(obs[None])
    state.action = np.asarray(action[0])
    return state


def _loop(run: OnlineRun, state: LoopState) -> None:
    """Act, store, (after warmup) update, log, evaluate, checkpoint: once per env step (docs/method.md §2.4)."""
    config = run.config
    with ProgressBar(config.steps, "online") as progress:
        while state.env_step < config.steps:
            transition, episode_ended = _act(run, state)
            _store_and_update(run, state, transition)
            if episode_ended:
                run.batches.end_episode(state)
            if state.env_step % config.log_every == 0:
                _log_training(run, state)
            if state.env_step % config.eval_every == 0 or state.env_step == config.steps:
                _evaluate(run, state)
            if run.clock.due(state.env_step) or run.stop.signal:
                _save(run, state)
            if run.stop.signal:
                raise Stopped(run.stop.exit_code, f"stopped at env step {state.env_step} after writing a checkpoint; "
                                                  f"continue with `wsrl resume {run.out}`")
            progress.advance(state.env_step, state.last_eval.get("eval_return"))


def _act(run: OnlineRun, state: LoopState) -> tuple[dict[str, Any], bool]:
    """One env step with the action the sources choose; returns the transition and whether the episode ended."""
    state.env_step += 1
    action = state.action
    for source in run.actions:
        action = source.choose(state, action)
    state.episode_actions.append(action)
    next_obs, reward, terminated, truncated, info = run.env.step(action)
    transition = {"observations": state.obs, "actions": action, "rewards": np.float32(reward),
                  "next_observations": next_obs, "masks": np.float32(not terminated)}
    state.episode.record(float(info.get("raw_reward", reward)), success_flag(info))
    if state.returns is not None:
        state.returns.rewards.append(float(reward))
    if terminated or truncated:
        state.episode.end()
        state.env_reset_rng, state.episode_actions = run.env.unwrapped.np_random.bit_generator.state, []
        next_obs, _ = run.env.reset()
    state.obs = next_obs
    return transition, bool(terminated or truncated)


def _store_and_update(run: OnlineRun, state: LoopState, transition: dict[str, Any]) -> None:
    """Store the transition and sample the next action; after warmup also one high-UTD update (one device call)."""
    if state.env_step >= run.first_update_step:
        state.agent, state.buffer, action, state.metrics = _insert_update_and_act(
            state.agent, state.buffer, transition, state.obs, run.batches.offline,
            offline_ratio=run.batches.offline_ratio, sample_limit=run.batches.sample_limit(state))
    else:
        state.agent, state.buffer, action = _insert_and_act(state.agent, state.buffer, transition, state.obs)
    state.action = np.asarray(action)


def _elapsed(run: OnlineRun, state: LoopState) -> float:
    return state.wall_time_before + time.perf_counter() - run.started


def _row(run: OnlineRun, state: LoopState, extra: dict[str, Any]) -> dict[str, Any]:
    elapsed = _elapsed(run, state)
    return {"env_step": state.env_step, "grad_step": int(state.agent.critic.step) - state.grad_step_at_start,
            "phase": "warmup" if state.env_step <= run.config.warmup_steps else "online",
            "wall_time": elapsed, "env_steps_per_s": state.env_step / max(elapsed, 1e-9), **extra}


def _log_training(run: OnlineRun, state: LoopState) -> None:
    metrics = {k: float(v) for k, v in state.metrics.items()}
    run.logger.log(_row(run, state, {"episode_return": state.episode.last_return, **metrics}))
    check_metrics(state.env_step, metrics)


def _evaluate(run: OnlineRun, state: LoopState) -> None:
    config = run.config
    state.last_eval = evaluate(state.agent, run.eval_env, config.eval_episodes, rundir.eval_seed(config.seed),
                               config.env, guide=run.guide, guide_steps=state.guide_horizon)
    jsrl = {"jsrl_horizon": state.guide_horizon} if run.guide is not None else {}
    run.logger.log(_row(run, state, {**state.last_eval, **jsrl}))
    for source in run.actions:
        source.after_eval(state, state.last_eval["eval_return"])
    state.best_eval = max(state.best_eval, state.last_eval["eval_return"])


def _save(run: OnlineRun, state: LoopState) -> None:
    """A checkpoint at the current step that `wsrl resume` continues exactly: the agent, the buffer's filled rows,
    and the loop state (loop.json); never one holding non-finite parameters."""
    directory = run.out / "checkpoints" / f"step_{state.env_step}"
    if directory.is_dir():
        return  # already saved at this step
    check_parameters(state.env_step, state.agent)
    rows = io.BytesIO()
    np.savez_compressed(rows, **state.buffer.rows())
    files = {LOOP_FILE: json.dumps(_loop_record(run, state)).encode(), BUFFER_FILE: rows.getvalue()}
    guide = run.guide
    if guide is not None:
        files[GUIDE_FILE] = checkpoint.agent_bytes(guide)
    obs_dim, action_dim = space_dims(run.env)
    checkpoint.save(state.agent, directory, checkpoint.metadata(state.agent, obs_dim, action_dim, run.config.env,
                                                                state.env_step), files)
    checkpoint.prune(run.out, run.config.keep_checkpoints)
    run.clock.saved()


def _loop_record(run: OnlineRun, state: LoopState) -> dict[str, Any]:
    """Everything of the loop state that is not the agent or the buffer, as JSON."""
    return {
        "format": LOOP_FORMAT, "env_step": state.env_step, "metrics_bytes": run.logger.position,
        "wall_time": _elapsed(run, state), "grad_step_at_start": state.grad_step_at_start,
        "action": state.action.tolist(), "np_rng": state.np_rng.bit_generator.state,
        "env_reset_rng": state.env_reset_rng, "episode_actions": [a.tolist() for a in state.episode_actions],
        "action_space_rng": run.env.action_space.np_random.bit_generator.state,
        "episode": asdict(state.episode), "guide_horizon": state.guide_horizon, "best_eval": state.best_eval,
        "last_eval": state.last_eval, "metrics": {k: float(v) for k, v in state.metrics.items()},
        "returns": None if state.returns is None else asdict(state.returns),
    }


def _read_loop(directory: Path) -> dict[str, Any]:
    try:
        record = json.loads((directory / LOOP_FILE).read_text())
    except FileNotFoundError:
        raise UserError(f"checkpoint {directory} holds no loop state ({LOOP_FILE}): it was not written by a "
                        "resumable run") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"checkpoint {directory}: unreadable {LOOP_FILE} ({e}); resume from an earlier one") from None
    if record.get("format") != LOOP_FORMAT:
        raise UserError(f"checkpoint {directory} was written by an incompatible wsrl (loop format "
                        f"{record.get('format')}, this one reads {LOOP_FORMAT})")
    return record


def _generator(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def _read_buffer(directory: Path, empty: ReplayBuffer) -> ReplayBuffer:
    try:
        with np.load(directory / BUFFER_FILE) as stored:
            return empty.with_rows(dict(stored))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise UserError(f"checkpoint {directory}: corrupt {BUFFER_FILE} ({e}); resume from an earlier one") from None


def _restore(run: OnlineRun, agent: Agent, buffer: ReplayBuffer, record: dict[str, Any]) -> LoopState:
    """The loop state a checkpoint recorded: rng states, episode bookkeeping, and the env replayed to its position."""
    config = run.config
    env = run.env
    obs, _ = env.reset(seed=config.seed)
    if record["env_reset_rng"] is not None:
        env.unwrapped.np_random.bit_generator.state = record["env_reset_rng"]
        obs, _ = env.reset()
    actions = [np.asarray(a, np.float32) for a in record["episode_actions"]]
    for action in actions:
        obs, *_ = env.step(action)
    env.action_space.np_random.bit_generator.state = record["action_space_rng"]
    returns = record["returns"]
    return LoopState(
        agent, buffer, obs, np.asarray(record["action"], np.float32), _generator(record["np_rng"]),
        record["grad_step_at_start"], env_step=record["env_step"], env_reset_rng=record["env_reset_rng"],
        episode_actions=actions, wall_time_before=record["wall_time"], episode=EpisodeStats(**record["episode"]),
        returns=None if returns is None else EpisodeReturns(**returns), guide_horizon=record["guide_horizon"],
        best_eval=record["best_eval"], last_eval=record["last_eval"],
        metrics={k: np.float32(v) for k, v in record["metrics"].items()})


def _summary(run: OnlineRun, state: LoopState) -> dict[str, Any]:
    elapsed = _elapsed(run, state)
    return {"env": run.config.env, "env_steps": state.env_step,
            "grad_steps": int(state.agent.critic.step) - state.grad_step_at_start, "wall_time_s": elapsed,
            "env_steps_per_s": state.env_step / elapsed, "last_train_episode_return": state.episode.last_return,
            "train_episodes": state.episode.finished, "train_successes": state.episode.successes,
            "final_eval": state.last_eval}
