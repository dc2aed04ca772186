"""Online training: warmup with the frozen policy, then one high-UTD update per env step (docs/method.md §2).

`wsrl train` runs this from a random initialisation (SAC fast, RLPD); `wsrl finetune` first restores a
whole checkpoint (WSRL, and the baselines that continue an offline learner). With WSRL the replay buffer
starts empty and never holds offline data.

The loop is written over explicit state (each seed's `LoopState` on the host, every seed's agent and replay
buffer stacked in `Learners` on the device) and pluggable pieces: each seed's method pieces (`sources.RandomWarmup`,
`sources.GuidedStart`, `sources.OnlineReturns`, which own their state and checkpoint fields) and a
`sources.BatchSource` (online buffer, optionally mixed with offline data).

`--seeds N` runs N seeds in lockstep in one process (docs/architecture.md §6): one environment each, and per env
step one device call that stores every seed's transition, updates every agent on its own buffer and samples every
next action. Seed S writes OUT/seedS/, an ordinary single-seed run directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from wsrl import checkpoint, rundir
from wsrl.agents import LEARNERS, agent_from_meta
from wsrl.agents.common import Agent, over_seeds, sample_seeds, stack, take, update_jit
from wsrl.agents.sac import SACAgent
from wsrl.config import NETWORK_FIELDS, OnlineConfig
from wsrl.data.buffer import ReplayBuffer, mixed_batch
from wsrl.deploy import NumpyPolicy, actor_arrays
from wsrl.envs import make_env, space_dims, success_flag
from wsrl.errors import UserError
from wsrl.evaluation import evaluate
from wsrl.runlog import ProgressBar
from wsrl.train import harness
from wsrl.train.harness import Harness
from wsrl.train.lifecycle import check_metrics
from wsrl.train.sources import BatchSource, GuidedStart, OnlineReturns, Piece, batch_source, method_pieces

# Pre-training state that the online agent does not carry over: the CQL multiplier (docs/method.md §2.1).
OFFLINE_ONLY_STATE = ("cql_lagrange",)
BUFFER_FILE, GUIDE_FILE = "buffer.npz", "guide.msgpack"


@dataclass
class EpisodeStats:
    """The running training episode and the counts over finished ones (raw, unscaled rewards)."""

    length: int = 0
    raw_return: float = 0.0
    success: bool | None = None
    last_return: float | None = None
    finished: int = 0
    successes: int = 0
    window: list[tuple[float, bool | None]] = field(default_factory=list)  # (return, success) since the last score

    def record(self, raw_reward: float, success: bool | None) -> None:
        self.length += 1
        self.raw_return += raw_reward
        self.success = None if success is None else bool(self.success) or success

    def end(self) -> None:
        self.last_return = self.raw_return
        self.finished += 1
        self.successes += bool(self.success)
        self.window.append((self.raw_return, self.success))
        self.length, self.raw_return, self.success = 0, 0.0, None

    def score(self) -> dict[str, float]:
        """The training episodes ended since the last call, scored (mean return, success rate where the env
        reports success; {} when none ended): a run without evaluation rollouts is scored by these."""
        window, self.window = self.window, []
        if not window:
            return {}
        scores = {"train_return": float(np.mean([r for r, _ in window])), "train_episodes": len(window)}
        if all(success is not None for _, success in window):
            scores["train_success"] = float(np.mean([bool(success) for _, success in window]))
        return scores


@dataclass
class LoopState:
    """What one seed's run changes on the host as it goes; with its agent and buffer (`Learners`), what a checkpoint
    must hold to continue it exactly."""

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
    best_eval: float = -np.inf
    best_eval_step: int = 0  # the env step of best_eval (the first, for ties)
    last_eval: dict[str, float] = field(default_factory=dict)

    def scored(self, score: float) -> None:
        """Record an evaluation's score (at the current env step) against the best so far."""
        if score > self.best_eval:
            self.best_eval, self.best_eval_step = score, self.env_step


@dataclass
class Learners:
    """Every seed's agent, replay buffer and last update's metrics, stacked on a leading seed axis (device)."""

    agents: Agent
    buffers: ReplayBuffer
    metrics: dict[str, jax.Array] = field(default_factory=dict)

    def agent(self, k: int) -> Agent:
        return take(self.agents, k)

    def buffer(self, k: int) -> ReplayBuffer:
        return take(self.buffers, k)

    def grad_step(self, k: int) -> int:
        return int(self.agents.critic.step[k])

    def host_metrics(self) -> list[dict[str, float]]:
        """Each seed's last update metrics as floats."""
        values = jax.device_get(self.metrics)
        return [{name: float(v[k]) for name, v in values.items()} for k in range(len(self.agents.critic.step))]


@dataclass(frozen=True)
class SeedRun:
    """One seed's config (its own seed), training env and method pieces (which hold the method's state)."""

    config: OnlineConfig
    env: gym.Env
    pieces: tuple[Piece, ...]

    @property
    def guided(self) -> GuidedStart | None:
        """JSRL's guide, if the run has one (evaluations then also start with it)."""
        return next((p for p in self.pieces if isinstance(p, GuidedStart)), None)

    @property
    def returns(self) -> OnlineReturns | None:
        """Cal-QL's online returns, if the learner needs them."""
        return next((p for p in self.pieces if isinstance(p, OnlineReturns)), None)

    def sample_limit(self) -> int | None:
        """Sample only rows of finished episodes when returns are needed (docs/method.md §2.3)."""
        return None if self.returns is None else self.returns.finished


@dataclass(frozen=True)
class OnlineRun:
    """What stays fixed during a run: config (of the first seed), the seeds, evaluation env, batch source, and the
    harness (outputs, loggers, clock, stop)."""

    config: OnlineConfig
    seeds: tuple[SeedRun, ...]
    eval_env: gym.Env | None  # None: no evaluation rollouts (--eval-episodes 0)
    batches: BatchSource
    first_update_step: int
    h: Harness


def _store(buffers: ReplayBuffer, transitions: dict) -> ReplayBuffer:
    """Every seed's transition into its buffer (a scatter, exact under `jax.vmap`)."""
    return jax.vmap(ReplayBuffer.insert)(buffers, transitions)


def _learn(agents: Agent, buffers: ReplayBuffer, offline: dict | None, offline_ratio: float,
           sample_limits: jax.Array | None) -> tuple[Agent, dict[str, jax.Array]]:
    """Every seed samples utd * batch transitions from its buffer (and the offline data) and updates once.

    Sampling (gathers, random bits: exact under `jax.vmap`) is batched over the seeds in place; only the update goes
    through `over_seeds`."""
    config = agents.config
    agents, keys = jax.vmap(lambda agent: agent.split_rng())(agents)
    batches = jax.vmap(lambda key, buffer, limit: mixed_batch(
        key, buffer, offline, config.utd, config.batch_size, offline_ratio, limit))(keys, buffers, sample_limits)
    offline_fraction = batches.pop("offline").mean(axis=1)
    agents, metrics = over_seeds(lambda agent, batch: agent.update(batch), agents, batches)
    return agents, {**metrics, "offline_fraction": offline_fraction}


@partial(jax.jit, donate_argnums=(1,))
def _insert_and_act(agents: Agent, buffers: ReplayBuffer, transitions: dict, obs: jax.Array):
    buffers = _store(buffers, transitions)
    agents, actions = sample_seeds(agents, obs)
    return agents, buffers, actions


@update_jit(donate_argnums=(1,), static_argnames=("offline_ratio",))
def _insert_update_and_act(agents: Agent, buffers: ReplayBuffer, transitions: dict, obs: jax.Array,
                           offline: dict | None, offline_ratio: float, sample_limits: jax.Array | None):
    """The one device call per env step: store, sample utd * batch, high-UTD update, next action (every seed)."""
    buffers = _store(buffers, transitions)
    agents, metrics = _learn(agents, buffers, offline, offline_ratio, sample_limits)
    agents, actions = sample_seeds(agents, obs)
    return agents, buffers, actions, metrics


@partial(jax.jit, donate_argnums=(0,))
def _set_returns(buffers: ReplayBuffer, k: int, idx: jax.Array, values: jax.Array) -> ReplayBuffer:
    """Write Monte-Carlo returns into rows `idx` of seed k's buffer; indices >= capacity (padding) are dropped."""
    returns = buffers.data["mc_returns"].at[k, idx].set(values, mode="drop")
    return buffers.replace(data={**buffers.data, "mc_returns": returns})


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
    if not LEARNERS[algo].seeds_sac:
        raise UserError(f"checkpoint {directory} is {algo}, whose policy cannot seed the SAC learner; "
                        f"continue it with --method {algo}")
    recorded = checkpoint.agent_config(meta)  # the restore below checks the arrays against the learner's config
    differ = [name for name in NETWORK_FIELDS if getattr(recorded, name) != getattr(config.agent, name)]
    if differ:
        raise UserError(f"checkpoint {directory} records networks with {', '.join(differ)} other than the learner's "
                        f"({', '.join(f'{getattr(recorded, n)} vs {getattr(config.agent, n)}' for n in differ)}); "
                        "fine-tune with the checkpoint's (`wsrl finetune` takes them from it)")
    fresh = SACAgent.create(config.agent, obs_dim, action_dim, config.seed)
    return checkpoint.restore(fresh, directory, drop=OFFLINE_ONLY_STATE)


def starting_points(init_from: str | Path | None, seeds: list[int]) -> list[Path | None]:
    """The checkpoint each seed starts from: seed S of a multi-seed pre-training (which must hold exactly these
    seeds) goes to seed S; any other run or checkpoint to every seed."""
    if init_from is None:
        return [None] * len(seeds)
    init_from = Path(init_from)
    pretrained = rundir.group_seeds(init_from)
    if pretrained is None:
        return [init_from] * len(seeds)
    if pretrained != seeds:
        raise UserError(f"--from {init_from} holds the pre-training of seeds {_seed_range(pretrained)}, this run asks "
                        f"for seeds {_seed_range(seeds)}: give --seed {pretrained[0]} --seeds {len(pretrained)}, or "
                        f"one seed's directory ({init_from}/seed{pretrained[0]})")
    return [path for _, path in rundir.seed_dirs(init_from, seeds[0], len(seeds))]


def _seed_range(seeds: list[int]) -> str:
    return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def run_online(config: OnlineConfig, out: str | Path, init_from: str | Path | None = None,
               overwrite: bool = False, command: str = "", save_buffer: bool = False,
               seeds: int = 1, require_update: bool = True) -> dict[str, Any]:
    """Train `seeds` seeds (config.seed, config.seed + 1, ...) online into run directory `out`; returns the summary
    also written to summary.json (for several seeds, their mean final evaluation; each seed's is in its directory).

    `save_buffer` also writes each seed's replay buffer transitions, oldest first, to replay_buffer.npz. A budget
    that ends before the first gradient step is refused, unless `require_update` is off (a run that `resume` will
    extend).
    """
    config.validate()
    if config.asynchronous and seeds > 1:
        raise UserError("--async runs one seed (one env, one learner thread); run more seeds as separate processes")
    out = Path(out)
    members = rundir.seed_dirs(out, config.seed, seeds)
    configs = [dataclasses.replace(config, seed=seed) for seed, _ in members]
    starts = starting_points(init_from, [seed for seed, _ in members])
    envs = [_make_env(c) for c in configs]
    obs_dim, action_dim = space_dims(envs[0])
    if config.jsrl is not None and init_from is None:
        raise UserError("JSRL needs a guide policy: give the pre-trained checkpoint with --from")
    guides = [initial_agent(c, obs_dim, action_dim, start) if config.jsrl is not None else None
              for c, start in zip(configs, starts, strict=True)]
    agents = [initial_agent(c, obs_dim, action_dim, None if config.jsrl is not None else start)
              for c, start in zip(configs, starts, strict=True)]
    batches = batch_source(config, agents[0].config.gamma, obs_dim, action_dim)
    seed_runs = _seed_runs(configs, envs, agents[0], guides, batches)
    if require_update:
        _refuse_no_update(config, agents[0], envs[0])
    learner = type(agents[0]).__name__
    harness.start(out, configs, command, overwrite,
                  {"kind": "online", "seeds": [c.seed for c in configs],
                   "init_from": None if init_from is None else str(init_from), "learner": learner},
                  [{"kind": "online", "init_from": None if start is None else str(start), "learner": learner}
                   for start in starts])
    with harness.harness(out, configs, "env_step") as h:
        run = _online_run(seed_runs, h, agents[0], batches)
        return _execute(run, lambda: _start(run, stack(agents)), save_buffer)


def resume_online(out: Path, config: OnlineConfig, directories: list[Path],
                  on_start: Callable[[], None], fresh_episode: bool = False) -> dict[str, Any]:
    """Continue the run in `out` from its checkpoint `directories` (one per seed, written by `_save`) up to
    `config.steps`; `on_start` runs once all input was checked. The env is brought back to where the checkpoint
    left it by replaying the interrupted episode's actions, or, with `fresh_episode` or an env whose metadata says
    `"replayable": False` (hardware), that episode ends there (as if truncated) and a new one starts."""
    config.validate()
    members = rundir.seed_dirs(out, config.seed, len(directories))
    configs = [dataclasses.replace(config, seed=seed) for seed, _ in members]
    envs = [_make_env(c) for c in configs]
    obs_dim, action_dim = space_dims(envs[0])
    loaded = [checkpoint.load_for_env(directory, obs_dim, action_dim, config.env) for directory in directories]
    agents = [checkpoint.restore(agent_from_meta(meta), directory) for directory, meta in loaded]
    guides = [None if config.jsrl is None else
              checkpoint.restore(agent_from_meta(meta), directory, agent_file=GUIDE_FILE) for directory, meta in loaded]
    batches = batch_source(config, agents[0].config.gamma, obs_dim, action_dim)  # once: it reads data
    seed_runs = _seed_runs(configs, envs, agents[0], guides, batches)
    fields = {**LOOP_FIELDS, **{name: kind for piece in seed_runs[0].pieces for name, kind in piece.fields.items()}}
    records = [harness.read_loop(directory, fields) for directory, _ in loaded]
    for seed, record in zip(seed_runs, records, strict=True):
        for piece in seed.pieces:
            piece.restore(record)
    empty = ReplayBuffer.create(obs_dim, action_dim, buffer_capacity(config, batches.appended))
    buffers = [_read_buffer(directory, empty) for directory in directories]
    on_start()
    with harness.harness(out, configs, "env_step", [(r["metrics_bytes"], r["env_step"]) for r in records]) as h:
        run = _online_run(seed_runs, h, agents[0], batches)
        fresh = fresh_episode or envs[0].unwrapped.metadata.get("replayable", True) is False
        if fresh:
            print(f"resuming {out} with a fresh episode: the run is exact up to this restart, not beyond it",
                  file=sys.stderr)
        return _execute(run, lambda: _restore(run, stack(agents), stack(buffers), records, fresh), False)


def _make_env(config: OnlineConfig, training: bool = True) -> gym.Env:
    """The training env (scaled rewards) or the evaluation env (raw rewards) of a config."""
    task = {"binary_reward": config.binary_reward, "terminate_on_success": config.terminate_on_success}
    if not training:
        return make_env(config.env, **task)
    return make_env(config.env, config.reward_scale, config.reward_bias, **task)


def _episode_limit(env: gym.Env) -> int:
    return env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000


def first_update(config: OnlineConfig, agent: Agent, env: gym.Env) -> tuple[int, str]:
    """The env step of the first gradient step, and what sets it: updates start once the step count exceeds the
    warmup K and one full UTD batch, and for learners that need Monte-Carlo returns also one full episode
    (docs/method.md §2.3)."""
    waits = {f"the {config.warmup_steps}-step warmup": config.warmup_steps,
             f"one UTD x batch ({agent.config.utd} x {agent.config.batch_size})":
                 agent.config.utd * agent.config.batch_size}
    if LEARNERS[agent.algo].online_returns:
        waits[f"one whole episode ({_episode_limit(env)} steps) for Cal-QL's returns"] = _episode_limit(env)
    why = max(waits, key=waits.get)
    return waits[why] + 1, why


def _refuse_no_update(config: OnlineConfig, agent: Agent, env: gym.Env) -> None:
    """A budget that ends before the first gradient step would only collect data: refused with what sets it."""
    first, why = first_update(config, agent, env)
    if config.steps < first:
        raise UserError(f"--steps {config.steps} ends before the first gradient step, at env step {first} (after "
                        f"{why}); give --steps {first} or more" +
                        (", or a shorter --warmup-steps" if why.startswith("the ") else ""))


def _seed_runs(configs: list[OnlineConfig], envs: list[gym.Env], agent: Agent, guides: list[Agent | None],
               batches: BatchSource) -> tuple[SeedRun, ...]:
    """Each seed's config, env and fresh method pieces (a resumed run restores their state from loop.json)."""
    limit, action_dim = _episode_limit(envs[0]), space_dims(envs[0])[1]
    return tuple(SeedRun(c, e, method_pieces(c, agent, action_dim, guide, limit, batches.appended))
                 for c, e, guide in zip(configs, envs, guides, strict=True))


def _online_run(seeds: tuple[SeedRun, ...], h: Harness, agent: Agent, batches: BatchSource) -> OnlineRun:
    config = seeds[0].config
    first_step, _ = first_update(config, agent, seeds[0].env)
    eval_env = _make_env(config, training=False) if config.eval_episodes else None  # a robot has one env
    return OnlineRun(config, seeds, eval_env, batches, first_step, h)


def _execute(run: OnlineRun, begin: Any, save_buffer: bool) -> dict[str, Any]:
    """Run the loop from the state `begin()` gives and write the final checkpoints (and with `save_buffer` each seed's
    replay_buffer.npz), in the harness."""
    held: dict[str, Any] = {}

    def body() -> None:
        held["states"], held["learners"] = states, learners = begin()
        _loop(run, states, learners)
        _save(run, states, learners)
        if save_buffer:
            for k, path in enumerate(run.h.outs):
                np.savez(path / "replay_buffer.npz", **learners.buffer(k).transitions())

    def close() -> None:
        for seed in run.seeds:
            seed.env.close()
        if run.eval_env is not None:
            run.eval_env.close()

    return harness.execute(run.h, body, lambda k: _summary(run, k, held["states"][k], held["learners"]), close)


_sample = jax.jit(sample_seeds)

CAPACITY_ROWS = 4096  # the quantum a run's buffer is sized in


def buffer_capacity(config: OnlineConfig, appended: int) -> int:
    """Rows of a run's replay buffer: the `appended` offline transitions plus its env steps, rounded up to whole
    CAPACITY_ROWS, at most `buffer_capacity`. The buffer's shape is static in the compiled env-step program, so runs of
    nearby budgets share one program (and its persistent-cache entry); the rows past the budget are never written or
    sampled (sampling draws from the filled rows, a checkpoint keeps only those), so the results are the same."""
    return min(config.buffer_capacity, math.ceil((config.steps + appended) / CAPACITY_ROWS) * CAPACITY_ROWS)


def _start(run: OnlineRun, agents: Agent) -> tuple[list[LoopState], Learners]:
    """The state before the first env step: empty buffers (plus appended data), first observations and actions."""
    config = run.config
    obs_dim, action_dim = space_dims(run.seeds[0].env)
    empty = ReplayBuffer.create(obs_dim, action_dim, buffer_capacity(config, run.batches.appended))
    buffer = run.batches.fill(empty)
    learners = Learners(agents, stack([buffer] * len(run.seeds)))
    states = []
    for k, seed in enumerate(run.seeds):
        obs, _ = seed.env.reset(seed=seed.config.seed)
        seed.env.action_space.seed(seed.config.seed)
        states.append(LoopState(obs, np.zeros(action_dim, np.float32), np.random.default_rng(seed.config.seed),
                                learners.grad_step(k)))
        _evaluate(run, k, states[k], learners, learners.grad_step(k))
    learners.agents, actions = _sample(learners.agents, np.stack([state.obs for state in states]))
    for state, action in zip(states, np.asarray(actions), strict=True):
        state.action = action
    return states, learners


def _loop(run: OnlineRun, states: list[LoopState], learners: Learners) -> None:
    """Act, store, (after warmup) update, log, evaluate, checkpoint: once per env step, every seed in lockstep
    (docs/method.md §2.4). Storing and updating is the driver's: one device call per env step (`_Lockstep`), or with
    --async a background thread the env loop never waits for (`_BackgroundLearner`)."""
    config = run.config
    driver = (_BackgroundLearner if config.asynchronous else _Lockstep)(run, states, learners)
    plateaued = _plateaued(config, states)  # a run resumed where --patience ended it ends there again
    with driver, ProgressBar(config.steps, driver.label) as progress:
        while states[0].env_step < config.steps and not plateaued:
            acted = [_act(seed, state) for seed, state in zip(run.seeds, states, strict=True)]
            driver.step(states, [transition for transition, _ in acted])
            for k, (_, episode_ended) in enumerate(acted):
                if episode_ended and run.seeds[k].returns is not None:  # Cal-QL's returns-to-go into the buffer
                    with driver.paused():
                        _end_episode(run, k, learners)
            step = states[0].env_step
            if step % config.log_every == 0:
                for k, metrics in enumerate(driver.metrics(step)):
                    _log_training(run, k, states[k], driver.grad_step(k), metrics)
            if step % config.eval_every == 0 or step == config.steps:
                for k, state in enumerate(states):
                    _evaluate(run, k, state, learners, driver.grad_step(k))
                plateaued = _plateaued(config, states)
            if run.h.clock.due(step) or run.h.stop.signal:
                with driver.paused():
                    _save(run, states, learners)
            run.h.stop_if_asked(step, "env step")
            progress.advance(step, [score for s in states if (score := _score(s.last_eval)) is not None])


def _act(seed: SeedRun, state: LoopState) -> tuple[dict[str, Any], bool]:
    """One env step with the action the sources choose; returns the transition and whether the episode ended."""
    state.env_step += 1
    action = state.action
    for piece in seed.pieces:
        action = piece.choose(state, action)
    state.episode_actions.append(action)
    next_obs, reward, terminated, truncated, info = seed.env.step(action)
    transition = {"observations": state.obs, "actions": action, "rewards": np.float32(reward),
                  "next_observations": next_obs, "masks": np.float32(not terminated)}
    state.episode.record(float(info.get("raw_reward", reward)), success_flag(info))
    for piece in seed.pieces:
        piece.after_step(float(reward))
    if terminated or truncated:
        state.episode.end()
        state.env_reset_rng, state.episode_actions = seed.env.unwrapped.np_random.bit_generator.state, []
        next_obs, _ = seed.env.reset()
    state.obs = next_obs
    return transition, bool(terminated or truncated)


def _store_and_update(run: OnlineRun, states: list[LoopState], learners: Learners,
                      transitions: list[dict[str, Any]]) -> None:
    """Store every seed's transition and sample the next actions; after warmup also one high-UTD update per seed
    (one device call)."""
    stacked = {key: np.stack([np.asarray(t[key], np.float32) for t in transitions]) for key in transitions[0]}
    obs = np.stack([state.obs for state in states])
    if states[0].env_step >= run.first_update_step:
        limits = [seed.sample_limit() for seed in run.seeds]
        learners.agents, learners.buffers, actions, learners.metrics = _insert_update_and_act(
            learners.agents, learners.buffers, stacked, obs, run.batches.offline,
            offline_ratio=run.batches.offline_ratio, sample_limits=None if limits[0] is None else np.asarray(limits))
    else:
        learners.agents, learners.buffers, actions = _insert_and_act(learners.agents, learners.buffers, stacked, obs)
    for state, action in zip(states, np.asarray(actions), strict=True):
        state.action = action


def _end_episode(run: OnlineRun, k: int, learners: Learners) -> None:
    """Seed k's episode ended: its Monte-Carlo returns into its buffer (Cal-QL online)."""
    rows = run.seeds[k].returns.end_episode(capacity=learners.buffers.data["rewards"].shape[1])
    learners.buffers = _set_returns(learners.buffers, k, *rows)


_store_only = jax.jit(_store, donate_argnums=(0,))
_learn_only = update_jit(_learn, static_argnames=("offline_ratio",))


class _Lockstep:
    """The default driver of `_loop`: one device call per env step stores every seed's transition, makes its
    high-UTD update (from the first update step on) and samples its next action."""

    label = "online"

    def __init__(self, run: OnlineRun, states: list[LoopState], learners: Learners):
        self.run, self.learners = run, learners

    def __enter__(self) -> _Lockstep:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def step(self, states: list[LoopState], transitions: list[dict[str, Any]]) -> None:
        _store_and_update(self.run, states, self.learners, transitions)

    def paused(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def grad_step(self, k: int) -> int:
        return self.learners.grad_step(k)

    def metrics(self, step: int) -> list[dict[str, float]]:
        return self.learners.host_metrics()


class _BackgroundLearner(threading.Thread):
    """The --async driver of `_loop` (one seed): stores the env loop's transitions and updates the learner in a
    thread of its own, one update per env step (from the first update step on) on average, never making the env loop
    wait for it; the updates still due when the loop ends are made before the thread stops.

    The env loop acts with `policy`: the newest actor as a numpy `NumpyPolicy`, published after every update, so
    acting never queues behind an update on the device; the last update's metrics and gradient step are published
    on the host too. `paused` holds the learner between two of its steps, with every given transition stored, for
    what must see one consistent agent and buffer (a checkpoint, Cal-QL's returns)."""

    label = "online (async)"

    def __init__(self, run: OnlineRun, states: list[LoopState], learners: Learners):
        super().__init__(name="wsrl-learner", daemon=True)
        self.run_, self.state, self.learners = run, states[0], learners
        self.rng = np.random.default_rng([run.config.seed, self.state.env_step])  # the acting samples' own
        self.step_lock = threading.Lock()  # held while the learner's agent or buffer changes
        self.queue = threading.Condition()  # guards pending, due, closing
        self.pending: list[dict[str, Any]] = []
        self.due = self.done = 0
        self.closing: str | None = None  # "drain": finish what is due first; "now"
        self.error: BaseException | None = None
        self._grad_step, self._metrics = learners.grad_step(0), {}
        self._publish()

    def __enter__(self) -> _BackgroundLearner:
        self.start()
        return self

    def __exit__(self, error_type: Any, *exc: Any) -> None:
        self.close(drain=error_type is None)

    def _publish(self) -> None:
        unit = np.ones(self.learners.agents.action_dim)
        self.policy = NumpyPolicy(actor_arrays(self.learners.agent(0).actor.params, -unit, unit, squash=True))

    def step(self, states: list[LoopState], transitions: list[dict[str, Any]]) -> None:
        """Hand the transition over (counting one update due from the first update step on) and sample the next
        action from the newest policy."""
        if self.error is not None:
            raise self.error
        with self.queue:
            self.pending.append(transitions[0])
            self.due += self.state.env_step >= self.run_.first_update_step
            self.queue.notify()
        self.state.action = self.policy.sample(self.state.obs, self.rng)

    def grad_step(self, k: int) -> int:
        return self._grad_step

    def metrics(self, step: int) -> list[dict[str, float]]:
        """The last update's metrics and, from the first update step on, the critic updates per env step so far."""
        steps = step - self.run_.first_update_step + 1
        utd = {"utd_realised": self.done * self.learners.agents.config.utd / steps} if steps > 0 else {}
        return [{**self._metrics, **utd}]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self.step_lock:
            self._store_pending()
            yield

    def _store_pending(self) -> None:
        with self.queue:
            pending, self.pending = self.pending, []
        for transition in pending:
            stacked = {key: np.asarray(value, np.float32)[None] for key, value in transition.items()}
            self.learners.buffers = _store_only(self.learners.buffers, stacked)

    def _idle(self) -> bool:
        return not self.pending and self.done >= self.due

    def run(self) -> None:
        batches = self.run_.batches
        try:
            while True:
                with self.queue:
                    self.queue.wait_for(lambda: self.closing is not None or not self._idle())
                    if self.closing == "now" or (self.closing == "drain" and self._idle()):
                        return
                with self.step_lock:
                    self._store_pending()
                    if self.done < self.due:
                        limit = self.run_.seeds[0].sample_limit()
                        self.learners.agents, self.learners.metrics = _learn_only(
                            self.learners.agents, self.learners.buffers, batches.offline,
                            offline_ratio=batches.offline_ratio,
                            sample_limits=None if limit is None else np.asarray([limit]))
                        self.done += 1
                        self._metrics, self._grad_step = self.learners.host_metrics()[0], self.learners.grad_step(0)
                        self._publish()
        except BaseException as e:  # raised again in the env loop's thread
            self.error = e

    def close(self, drain: bool) -> None:
        """Stop the thread: after the updates due (`drain`), or after its current step."""
        with self.queue:
            self.closing = self.closing or ("drain" if drain else "now")
            self.queue.notify()
        self.join()
        if self.error is not None:
            raise self.error


def _row(run: OnlineRun, state: LoopState, grad_step: int, extra: dict[str, Any]) -> dict[str, Any]:
    elapsed = run.h.elapsed(state.wall_time_before)
    return {"env_step": state.env_step, "grad_step": grad_step - state.grad_step_at_start,
            "phase": "warmup" if state.env_step <= run.config.warmup_steps else "online",
            "wall_time": elapsed, "env_steps_per_s": state.env_step / max(elapsed, 1e-9), **extra}


def _log_training(run: OnlineRun, k: int, state: LoopState, grad_step: int, metrics: dict[str, float]) -> None:
    row = _row(run, state, grad_step, {"episode_return": state.episode.last_return, **metrics})
    run.h.loggers[k].log(row)
    check_metrics(state.env_step, metrics, run.h.whose(k))


def _evaluate(run: OnlineRun, k: int, state: LoopState, learners: Learners, grad_step: int) -> None:
    """An evaluation of seed k's policy, or, in a run without evaluation rollouts, the score of its training
    episodes since the last one (nothing when none ended)."""
    seed = run.seeds[k]
    if run.eval_env is None:
        scores = state.episode.score()
        if scores:
            state.last_eval = scores
            run.h.loggers[k].log(_row(run, state, grad_step, scores))
            state.scored(scores["train_return"])
        return
    state.episode.window.clear()  # scored only in runs without evaluation rollouts
    state.last_eval = evaluate(learners.agent(k), run.eval_env, seed.config.eval_episodes,
                               rundir.eval_seed(seed.config.seed), seed.config.env,
                               guide=None if seed.guided is None else seed.guided.guide,
                               guide_steps=0 if seed.guided is None else seed.guided.horizon)
    jsrl = {} if seed.guided is None else {"jsrl_horizon": seed.guided.horizon}
    run.h.loggers[k].log(_row(run, state, grad_step, {**state.last_eval, **jsrl}))
    for piece in seed.pieces:
        piece.after_eval(state, state.last_eval["eval_return"])
    state.scored(state.last_eval["eval_return"])


def _plateaued(config: OnlineConfig, states: list[LoopState]) -> bool:
    """--patience: whether an evaluation was due at this step and every seed's best score is `patience` env steps
    older (a run resumed from the checkpoint where it stopped ends there again)."""
    step = states[0].env_step
    return (config.patience > 0 and step % config.eval_every == 0
            and all(step - state.best_eval_step >= config.patience for state in states))


def _score(last_eval: dict[str, float]) -> float | None:
    """The return a run is judged by: its last evaluation's, or, without evaluation rollouts, its training
    episodes'."""
    return last_eval.get("eval_return", last_eval.get("train_return"))


def _save(run: OnlineRun, states: list[LoopState], learners: Learners) -> None:
    """A checkpoint per seed at the current step that `wsrl resume` continues exactly: the agent, the buffer's
    filled rows, the loop state (loop.json) and JSRL's guide."""
    metrics = learners.host_metrics() if learners.metrics else [{} for _ in states]
    for k, (seed, state) in enumerate(zip(run.seeds, states, strict=True)):

        def files(k: int = k, seed: SeedRun = seed) -> dict[str, bytes]:
            rows = io.BytesIO()
            np.savez_compressed(rows, **learners.buffer(k).rows())
            guide = {} if seed.guided is None else {GUIDE_FILE: checkpoint.agent_bytes(seed.guided.guide)}
            return {BUFFER_FILE: rows.getvalue(), **guide}

        agent = learners.agent(k)
        meta = checkpoint.metadata(agent, *space_dims(seed.env), seed.config.env, state.env_step)
        run.h.save(k, state.env_step, agent, meta, _loop_record(seed, state, metrics[k], run),
                   seed.config.keep_checkpoints, files)
    run.h.clock.saved()


def _loop_record(seed: SeedRun, state: LoopState, metrics: dict[str, float], run: OnlineRun) -> dict[str, Any]:
    """Everything of one seed's loop state that is not the agent or the buffer, as JSON."""
    return {
        "env_step": state.env_step, "wall_time": run.h.elapsed(state.wall_time_before),
        "grad_step_at_start": state.grad_step_at_start,
        "action": state.action.tolist(), "np_rng": state.np_rng.bit_generator.state,
        "env_reset_rng": state.env_reset_rng, "episode_actions": [a.tolist() for a in state.episode_actions],
        "action_space_rng": seed.env.action_space.np_random.bit_generator.state,
        "episode": asdict(state.episode), "best_eval": state.best_eval, "best_eval_step": state.best_eval_step,
        "last_eval": state.last_eval, "metrics": metrics, **{k: v for p in seed.pieces for k, v in p.record().items()},
    }


# The JSON types of loop.json's fields (`_loop_record`, and the harness's metrics_bytes), checked where it is read.
LOOP_FIELDS: harness.Fields = {
    "env_step": int, "metrics_bytes": int, "wall_time": (int, float), "grad_step_at_start": int, "action": list,
    "np_rng": dict, "env_reset_rng": (dict, type(None)), "episode_actions": list, "action_space_rng": dict,
    "episode": dict, "best_eval": (int, float), "best_eval_step": int, "last_eval": dict, "metrics": dict,
}  # and each method piece's own fields


def _generator(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def _read_buffer(directory: Path, empty: ReplayBuffer) -> ReplayBuffer:
    try:
        with np.load(directory / BUFFER_FILE) as stored:
            return empty.with_rows(dict(stored))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise UserError(f"checkpoint {directory}: corrupt {BUFFER_FILE} ({e}); resume from an earlier one") from None


def _restore(run: OnlineRun, agents: Agent, buffers: ReplayBuffer, records: list[dict[str, Any]],
             fresh: bool = False) -> tuple[list[LoopState], Learners]:
    """The loop state the checkpoints recorded: rng states, episode bookkeeping, each env replayed to its position
    (`fresh`: the interrupted episode ends at the checkpoint and a new one starts, with a new first action)."""
    states = []
    for seed, record in zip(run.seeds, records, strict=True):
        env = seed.env
        obs, _ = env.reset(seed=seed.config.seed)
        if record["env_reset_rng"] is not None:
            env.unwrapped.np_random.bit_generator.state = record["env_reset_rng"]
            obs, _ = env.reset()
        actions = [] if fresh else [np.asarray(a, np.float32) for a in record["episode_actions"]]
        for action in actions:
            obs, *_ = env.step(action)
        env.action_space.np_random.bit_generator.state = record["action_space_rng"]
        states.append(LoopState(
            obs, np.asarray(record["action"], np.float32), _generator(record["np_rng"]), record["grad_step_at_start"],
            env_step=record["env_step"], env_reset_rng=record["env_reset_rng"], episode_actions=actions,
            wall_time_before=record["wall_time"], episode=EpisodeStats(**record["episode"]),
            best_eval=record["best_eval"], best_eval_step=record["best_eval_step"], last_eval=record["last_eval"]))
    metrics = {name: np.asarray([r["metrics"][name] for r in records], np.float32) for name in records[0]["metrics"]}
    learners = Learners(agents, buffers, metrics)
    if fresh:
        for k, state in enumerate(states):
            if state.episode.length:  # the interrupted episode ends here (Cal-QL's returns of its rows included)
                state.episode.end()
                if run.seeds[k].returns is not None:
                    _end_episode(run, k, learners)
        learners.agents, actions = _sample(learners.agents, np.stack([state.obs for state in states]))
        for state, action in zip(states, np.asarray(actions), strict=True):
            state.action = action
    return states, learners


def _summary(run: OnlineRun, k: int, state: LoopState, learners: Learners) -> dict[str, Any]:
    elapsed = run.h.elapsed(state.wall_time_before)
    return {"env": run.config.env, "env_steps": state.env_step,
            "grad_steps": learners.grad_step(k) - state.grad_step_at_start, "wall_time_s": elapsed,
            "env_steps_per_s": state.env_step / elapsed, "last_train_episode_return": state.episode.last_return,
            "train_episodes": state.episode.finished, "train_successes": state.episode.successes,
            "final_eval": state.last_eval,
            **({"stopped_at_plateau": {"best_eval": state.best_eval, "best_eval_step": state.best_eval_step}}
               if state.env_step < run.config.steps else {})}
