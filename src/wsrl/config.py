"""Every configuration of wsrl as a frozen dataclass, one docstring per field (the CLI's help text).

This module imports neither jax nor gymnasium, so that `wsrl COMMAND --help` answers at once: the CLI
(`cli.py`, built on tyro) reads these classes, the presets fill them with the paper's numbers, and the
learners and loops receive them. Optional nested sub-configs hold what only some methods use (retention of
offline data, JSRL, an offline learner continued online); a field that is None does not apply, and its
flags are refused.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import netrc
import os
import types
import typing
import urllib.parse
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from tyro.conf import Suppress, arg

from wsrl.errors import UserError

# --- learners ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SACConfig:
    """Hyperparameters of the ensemble SAC learner; defaults are WSRL's locomotion online phase."""

    actor_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy MLP."""
    critic_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of each Q-function MLP."""
    actor_layer_norm: bool = True
    """LayerNorm after every hidden Dense layer of the policy."""
    critic_layer_norm: bool = True
    """LayerNorm after every hidden Dense layer of the critics."""
    last_hidden_init_scale: float | None = 1e-2
    """Orthogonal init scale of the last hidden layer of the policy and critic MLPs, replacing sqrt 2 (None: sqrt 2)."""
    shared_value_head: bool = True
    """One value head shared by all critics on their own MLP backbones (the reference WSRL code); off: one head
    per critic (RLPD)."""
    policy_std: Literal["exp", "uniform"] = "exp"
    """Policy std: 'exp' (state-dependent head) or 'uniform' (learned state-independent log-std, init 0)."""
    num_critics: int = 10
    """Size of the Q ensemble."""
    critic_subset: int = 2
    """Number of target critics whose minimum forms the TD target."""
    subset_with_replacement: bool = True
    """Draw the target subset with replacement (WSRL) or without (RLPD/REDQ)."""
    actor_critic_reduction: Literal["min", "mean"] = "min"
    """How the actor aggregates the ensemble: 'min' (WSRL) or 'mean' (RLPD/REDQ)."""
    entropy_backup: bool = False
    """Subtract alpha * log pi(a'|s') in the TD target (off in WSRL, on in RLPD)."""
    target_entropy_per_dim: float = -1.0
    """Target entropy = this times the action dimension (-1 in WSRL, -1/2 in RLPD)."""
    max_target_backup: bool = False
    """Max-target backup: max over `backup_actions` next actions of the subset-min Q (AntMaze)."""
    backup_actions: int = 10
    """Number of next actions sampled for the max-target backup."""
    utd: int = 4
    """Update-to-data ratio: critic steps per environment step."""
    batch_size: int = 256
    """Transitions per critic minibatch; one update samples utd * batch_size."""
    actor_on_full_batch: bool = True
    """Actor and temperature step on the full utd * batch_size batch (else on the last minibatch)."""
    actor_lr: float = 1e-4
    """Adam learning rate of the policy."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    temperature_lr: float = 1e-4
    """Adam learning rate of the temperature multiplier."""
    initial_temperature: float = 1.0
    """Initial alpha = softplus(lambda)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 5e-3
    """Polyak rate of the target critics, applied after every critic step."""
    step_all_optimizers: bool = True
    """The reference code's optimiser bookkeeping (docs/method.md §2.4): every network's Adam steps on every
    update, on a zero gradient for the networks not being updated, and a UTD-1 update computes all gradients at
    the same parameters; off: only the updated network steps, the actor after the critic."""

    def validate(self) -> None:
        """Raise ValueError naming the first impossible setting."""
        checks = [
            (self.utd >= 1, f"utd must be >= 1, got {self.utd}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.num_critics >= 1, f"num_critics must be >= 1, got {self.num_critics}"),
            (1 <= self.critic_subset, f"critic_subset must be >= 1, got {self.critic_subset}"),
            (self.subset_with_replacement or self.critic_subset <= self.num_critics,
             f"critic_subset {self.critic_subset} > num_critics {self.num_critics} without replacement"),
            (self.actor_critic_reduction in ("min", "mean"), "actor_critic_reduction must be 'min' or 'mean'"),
            (self.policy_std in ("exp", "uniform"), "policy_std must be 'exp' or 'uniform'"),
            (self.backup_actions >= 1, "backup_actions must be >= 1"),
            (0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}"),
            (0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.initial_temperature > 0, "initial_temperature must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class CQLConfig(SACConfig):
    """CQL / Cal-QL: SAC settings plus the conservative penalty; offline defaults of the locomotion preset."""

    max_target_backup: bool = True
    """Max-target backup: max over `backup_actions` next actions of the subset-min Q (on for CQL)."""
    utd: int = 1
    """Update-to-data ratio: critic steps per update (1 offline)."""
    cql_alpha: float = 5.0
    """Weight of the CQL penalty (fixed-alpha variant)."""
    cql_autotune: bool = False
    """Lagrange variant: alpha = softplus(lambda) >= 0 tuned to hold the penalty at the target action gap."""
    cql_target_action_gap: float = 0.8
    """Target of the mean penalty for the Lagrange variant."""
    cql_alpha_lr: float = 3e-4
    """Adam learning rate of the Lagrange multiplier."""
    cql_initial_alpha: float = 1.0
    """Initial alpha of the Lagrange variant."""
    cql_n_actions: int = 10
    """Sampled actions per proposal (uniform, pi(.|s), pi(.|s')) in the logsumexp."""
    cql_importance_sample: bool = True
    """Subtract each proposal's log-density inside the logsumexp."""
    cql_temp: float = 1.0
    """Temperature of the logsumexp."""
    calql: Annotated[bool, Suppress] = False
    """Cal-QL: clip policy-action Q-values in the penalty from below by the return-to-go (set by --algo)."""

    def validate(self) -> None:
        super().validate()
        if self.cql_n_actions < 1:
            raise ValueError("cql_n_actions must be >= 1")
        if self.cql_temp <= 0 or self.cql_initial_alpha <= 0:
            raise ValueError("cql_temp and cql_initial_alpha must be > 0")


@dataclass(frozen=True)
class IQLConfig:
    """IQL hyperparameters; defaults are the locomotion values."""

    actor_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy MLP."""
    critic_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of each Q-function and of the value MLP."""
    num_critics: int = 2
    """Number of Q-functions; V regresses to their target minimum."""
    layer_norm: bool = False
    """LayerNorm after every hidden layer of every network."""
    expectile: float = 0.7
    """Expectile tau of the value regression (0.9 AntMaze, 0.7 elsewhere)."""
    awr_temperature: float = 3.0
    """Inverse temperature beta of the advantage weights exp(beta * (Q - V))."""
    actor_dropout: float = 0.0
    """Dropout rate in the policy MLP (0.1 Adroit and Kitchen)."""
    actor_last_hidden_init_scale: float | None = 1e-2
    """Variance-scaling init scale of the policy's last hidden layer, replacing 1."""
    actor_lr: float = 3e-4
    """Adam learning rate of the policy."""
    critic_lr: float = 3e-4
    """Adam learning rate of the Q-functions."""
    value_lr: float = 3e-4
    """Adam learning rate of the value function."""
    batch_size: int = 256
    """Transitions per update."""
    utd: int = 1
    """Updates per sampled batch group (1: one update per batch_size transitions)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 5e-3
    """Polyak rate of the target Q-functions."""
    step_all_optimizers: bool = True
    """The reference code's update (docs/method.md §2.4): the value, critic and actor gradients all at the same
    parameters, applied together; off: the value step first, the actor and critics then use the new V."""

    def validate(self) -> None:
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile}")
        if self.utd != 1:
            raise ValueError("IQL updates once per batch: utd must be 1")
        if self.batch_size < 1 or self.num_critics < 1:
            raise ValueError("batch_size and num_critics must be >= 1")


def _check_wandb(config: Any) -> None:
    """--wandb needs the package, and a login unless W&B only writes files (WANDB_MODE offline / disabled)."""
    if not config.wandb:
        return
    if importlib.util.find_spec("wandb") is None:
        raise UserError("--wandb needs W&B: pip install 'wsrl[wandb]'")
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled") or os.environ.get("WANDB_API_KEY"):
        return
    host = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        logged_in = netrc.netrc().authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        logged_in = False
    if not logged_in:
        raise UserError("--wandb: not logged in to W&B; run `wandb login`, or set WANDB_MODE=offline to write the "
                        "logs to files only (`wandb sync RUN/wandb/offline-run-*` uploads them later)")


def _require_at_least(config: Any, low: int, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value < low:
            kind = "a positive integer" if low == 1 else f">= {low}"
            raise UserError(f"{flag_name(name)} must be {kind}, got {value}")


def _validate_agent(agent: Any) -> None:
    try:
        agent.validate()
    except ValueError as e:
        raise UserError(f"impossible agent config: {e}") from None


# The learner a checkpoint's meta.json names (`algo`) -> the config class of its `agent_config` (agents/__init__.py
# maps the same names to the learners).
ALGO_CONFIGS: dict[str, type] = {"sac": SACConfig, "cql": CQLConfig, "calql": CQLConfig, "iql": IQLConfig}
# The fields of a learner's config that shape its parameters: a checkpoint loads into a learner whose values equal
# the checkpoint's.
NETWORK_FIELDS = ("actor_hidden_dims", "critic_hidden_dims", "actor_layer_norm", "critic_layer_norm",
                  "shared_value_head", "policy_std", "num_critics")


# --- online runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContinuedConfig:
    """The checkpoint's own offline learner (Cal-QL, CQL or IQL) continued online with its own loss and
    hyperparameters, instead of the ensemble SAC learner (the baselines of docs/method.md §5)."""

    algo: Annotated[Literal["calql", "cql", "iql"], Suppress] = "calql"
    """The offline algorithm the checkpoint must hold (set by --method)."""
    continued_utd: int = 0
    """Critic steps per env step of the continued learner (0: the checkpoint's own, 1)."""


@dataclass(frozen=True)
class RetentionConfig:
    """Offline data kept during online training (the retention baselines and ablations, docs/method.md §5)."""

    retain: Literal["mix", "append"] = "mix"
    """mix: every minibatch draws --offline-ratio of its rows from the dataset; append: the dataset is copied into
    the online buffer."""
    offline_ratio: float = 0.5
    """With --retain mix: fraction of every minibatch drawn from the offline dataset."""
    dataset: str = ""
    """Offline dataset to retain (Minari id or directory, or D4RL hdf5 file)."""


@dataclass(frozen=True)
class JSRLConfig:
    """JSRL: the --from policy guides the first h steps of every episode; the learner starts from scratch."""

    jsrl_stages: int = 10
    """Curriculum stages: h starts at the episode limit and shrinks by limit / stages whenever an evaluation of
    guide-then-learner is within --jsrl-tolerance of the best one."""
    jsrl_initial_horizon: int = 0
    """Guide steps per episode at the start (0: the env's episode limit)."""
    jsrl_tolerance: float = 0.05
    """Relative tolerance to the best evaluation return for moving to the next (shorter) guide horizon."""


@dataclass(frozen=True)
class OnlineConfig:
    """An online run: environment, budget, warmup, evaluation and logging, the learner, and the method's parts."""

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
    patience: int = 0
    """End the run early once its best evaluation score is this many env steps older than its newest evaluation
    (every seed's, for several seeds; ties keep the first); 0: run the whole budget. A resumed run keeps the rule."""
    eval_episodes: int = 20
    """Episodes per evaluation (deterministic policy, unscaled rewards, in a second env instance). 0: one env and
    no evaluation rollouts (a robot); every --eval-every steps the training episodes ended since the last such point
    are scored instead (train_return, train_success)."""
    log_every: int = 1000
    """Write training metrics every this many env steps."""
    checkpoint_every: int = 0
    """Save a checkpoint every this many env steps (0: by time only, and at the end)."""
    checkpoint_minutes: float = 10.0
    """Also save a checkpoint whenever this many minutes of work would otherwise be lost to a kill (0: off)."""
    keep_checkpoints: int = 2
    """Checkpoints kept in checkpoints/ (the newest; 0: all)."""
    wandb: bool = False
    """Also log to Weights & Biases (pip install 'wsrl[wandb]'): every metrics.csv scalar, the config, the final
    plot; one W&B run per seed (grouped by the run), its files in RUN/wandb/. WANDB_MODE=offline: files only."""
    wandb_project: str = "wsrl"
    """W&B project of --wandb."""
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
    sparse_failure_reward: float | None = None
    """Raw failure reward of a sparse task, for Cal-QL's online returns-to-go (as in pre-training)."""
    agent: SACConfig | ContinuedConfig = field(default_factory=SACConfig)
    """The learner: the ensemble SAC learner (WSRL; a CQL / Cal-QL checkpoint seeds it), or the checkpoint's own
    offline learner continued online (set by --method)."""
    retention: RetentionConfig | None = None
    """Offline data kept online (None: none, as WSRL)."""
    jsrl: JSRLConfig | None = None
    """JSRL's guide curriculum (None: no guide)."""
    asynchronous: Annotated[bool, arg(name="async")] = False
    """The env loop never waits for the learner: it acts with the newest policy while a background thread stores its
    transitions and updates, one update per env step on average (the realised UTD is logged as utd_realised). One
    seed; a run resumes from its checkpoints, but not bit for bit (docs/robots.md)."""

    @property
    def continued(self) -> ContinuedConfig | None:
        return self.agent if isinstance(self.agent, ContinuedConfig) else None

    def validate(self) -> None:
        _require_at_least(self, 1, "steps", "eval_every", "log_every", "buffer_capacity")
        _check_wandb(self)
        _require_at_least(self, 0, "warmup_steps", "checkpoint_every", "checkpoint_minutes", "keep_checkpoints",
                          "eval_episodes", "patience")
        if self.jsrl is not None and self.eval_episodes == 0:
            raise UserError("JSRL shrinks its guide's horizon as evaluations improve: give --eval-episodes >= 1")
        if self.retention is not None:
            if not 0.0 <= self.retention.offline_ratio <= 1.0:
                raise UserError(f"--offline-ratio must be in [0, 1], got {self.retention.offline_ratio}")
            if not self.retention.dataset:
                raise UserError(f"--retain {self.retention.retain} keeps offline data: give it with --dataset")
        if self.jsrl is not None and (self.jsrl.jsrl_stages < 1 or min(self.jsrl.jsrl_tolerance,
                                                                        self.jsrl.jsrl_initial_horizon) < 0):
            raise UserError("--jsrl-stages must be >= 1, --jsrl-initial-horizon and --jsrl-tolerance >= 0")
        if self.continued is not None:
            if self.continued.continued_utd < 0:
                raise UserError(f"--continued-utd must be >= 0, got {self.continued.continued_utd}")
            return
        _validate_agent(self.agent)


# --- offline pre-training ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OfflineConfig:
    """Offline pre-training: dataset, its reward convention, budget, evaluation, and the learner."""

    dataset: str = ""
    """Minari dataset id (in $MINARI_DATASETS_PATH or ~/.minari/datasets), Minari directory, or D4RL hdf5 file."""
    algo: Literal["calql", "cql", "iql"] = "cql"
    """Offline algorithm: Cal-QL (CQL with the return-to-go lower bound), CQL, or IQL."""
    env: str = ""
    """Environment for evaluation (default: the one named in the dataset's metadata)."""
    steps: int = 250_000
    """Offline gradient steps."""
    seed: int = 0
    """Seed of the agent, the batch sampling and the evaluation episodes."""
    eval_every: int = 50_000
    """Evaluate every this many gradient steps (and at the end), when the env can be made."""
    eval_episodes: int = 20
    """Episodes per evaluation (deterministic policy, unscaled rewards)."""
    log_every: int = 1000
    """Write training metrics every this many gradient steps."""
    checkpoint_every: int = 0
    """Save a checkpoint every this many gradient steps (0: by time only, and at the end)."""
    checkpoint_minutes: float = 10.0
    """Also save a checkpoint whenever this many minutes of work would otherwise be lost to a kill (0: off)."""
    keep_checkpoints: int = 2
    """Checkpoints kept in checkpoints/ (the newest; 0: all)."""
    wandb: bool = False
    """Also log to Weights & Biases (pip install 'wsrl[wandb]'): every metrics.csv scalar, the config, the final
    plot; one W&B run per seed (grouped by the run), its files in RUN/wandb/. WANDB_MODE=offline: files only."""
    wandb_project: str = "wsrl"
    """W&B project of --wandb."""
    reward_scale: float = 1.0
    """Dataset reward scale (applied once, when the dataset is loaded)."""
    reward_bias: float = 0.0
    """Dataset reward bias (applied once, when the dataset is loaded)."""
    sparse_failure_reward: float | None = None
    """Raw failure reward of a sparse task: all-failure episodes get r / (1 - gamma) as return-to-go."""
    binary_reward: bool = False
    """Rewards -1 / 0 from the success flags (the dataset's infos/success, the eval env's info) (Adroit binary)."""
    terminate_on_success: bool = False
    """Episodes end at the first success (goal tasks): dataset episodes are cut there, evaluation episodes end."""
    action_limit: float | None = 0.99999
    """Clip dataset actions to +- this value (None: no clipping)."""
    agent: CQLConfig | IQLConfig = field(default_factory=CQLConfig)
    """The learner: a CQLConfig for calql / cql, an IQLConfig for iql."""

    def validate(self) -> None:
        if not self.dataset:
            raise UserError("--dataset is required: a Minari id or directory, or a D4RL hdf5 file")
        _require_at_least(self, 1, "steps", "eval_every", "eval_episodes", "log_every")
        _require_at_least(self, 0, "checkpoint_every", "checkpoint_minutes", "keep_checkpoints")
        _check_wandb(self)
        expected = IQLConfig if self.algo == "iql" else CQLConfig
        if not isinstance(self.agent, expected):
            raise UserError(f"--algo {self.algo} needs a {expected.__name__}, got a {type(self.agent).__name__}")
        _validate_agent(self.agent)


# --- dataset recipes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CollectConfig:
    """What to collect, how, and how much."""

    env: str = "Hopper-v5"
    """Gymnasium environment id to collect in."""
    recipe: Literal["random", "policy", "sac-ladder", "waypoint", "demos", "dapg", "adroit-binary"] = "random"
    """random: uniform actions; policy: rollouts of a wsrl checkpoint (--from); sac-ladder: SAC's medium,
    medium-replay, expert and medium-expert datasets; waypoint: maze planner + noisy PD controller (PointMaze);
    demos: a DAPG demonstrations file replayed (--from); dapg: sampled rollouts of a DAPG expert policy (--from);
    adroit-binary: the paper's Adroit binary data, demonstrations + behaviour-cloned rollouts (--from: a
    hand_dapg checkout)."""
    steps: int = 100_000
    """Environment steps to record (sac-ladder: SAC training steps; adroit-binary: of the behaviour-cloned
    rollouts, in whole episodes; demos: unused, every demonstration is replayed)."""
    seed: int = 0
    """Seed of the environment and of the actions: the same seed gives the same dataset (sac-ladder: on the same
    machine; SAC trained on another machine can pick other snapshots, docs/reproduce.md §5.1)."""
    action_noise: float = 0.0
    """policy and waypoint recipes: std of Gaussian noise added to each action."""
    epsilon: float = 0.0
    """policy recipe: probability of replacing the action by a uniform random one."""
    rollout_steps: int = 0
    """sac-ladder: env steps of the medium and expert rollouts (0: as many as --steps)."""
    medium_fraction: float = 1 / 3
    """sac-ladder: 'medium' is the first snapshot whose return reaches this fraction of the expert's."""
    ladder_eval_every: int = 5000
    """sac-ladder: evaluate and snapshot the SAC policy every this many steps."""
    ladder_patience: int = 0
    """sac-ladder: stop SAC once its best evaluation is this many env steps old (0: run all --steps)."""

    def validate(self, from_path: str | None) -> None:
        _require_at_least(self, 1, "steps")
        if not 0.0 <= self.epsilon <= 1.0 or self.action_noise < 0:
            raise UserError("--epsilon must be in [0, 1] and --action-noise >= 0")
        if (not 0.0 < self.medium_fraction <= 1.0 or self.ladder_eval_every < 1 or self.rollout_steps < 0
                or self.ladder_patience < 0):
            raise UserError("--medium-fraction must be in (0, 1], --ladder-eval-every >= 1, --rollout-steps >= 0, "
                            "--ladder-patience >= 0")
        if self.recipe == "policy" and from_path is None:
            raise UserError("the policy recipe needs --from RUN_OR_CHECKPOINT (a policy to roll out)")
        if self.recipe in ("demos", "dapg", "adroit-binary") and from_path is None:
            raise UserError(f"the {self.recipe} recipe needs --from: a checkout of github.com/aravindr93/hand_dapg "
                            "(or its demonstrations / policy file)")


# --- to and from JSON ---------------------------------------------------------------------------------


def to_dict(config: Any) -> dict[str, Any]:
    """A config as JSON-ready data; a nested sub-config records its class name under "kind"."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = {"kind": type(value).__name__, **to_dict(value)} if dataclasses.is_dataclass(value) else value
    return out


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) config from `to_dict` output (what config.json and meta.json hold): lists become tuples;
    a key the class does not have, or a value not of its field's type, is a ValueError naming the field."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls, include_extras=False)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names - {"kind"})
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    kwargs = {}
    for name in names & set(data):
        value = data[name]
        if isinstance(value, dict):
            options = [t for t in typing.get_args(hints[name]) or (hints[name],) if dataclasses.is_dataclass(t)]
            kind = value.get("kind", options[0].__name__ if options else None)
            chosen = next((t for t in options if t.__name__ == kind), None)
            if chosen is None:
                raise ValueError(f"{cls.__name__}.{name}: unknown kind {kind!r}")
            value = from_dict(chosen, {k: v for k, v in value.items() if k != "kind"})
        else:
            if isinstance(value, list):
                value = tuple(value)
            if not _conforms(value, hints[name]):
                raise ValueError(f"{cls.__name__}.{name}: {value!r} is not of type {_type_name(hints[name])}")
        kwargs[name] = value
    return cls(**kwargs)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a config field's type (ints pass for floats, as JSON writes 10.0 as 10)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(args) == len(value) and all(_conforms(v, a) for v, a in zip(value, args, strict=True))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if dataclasses.is_dataclass(hint):
        return False  # a nested config is a JSON object, handled by from_dict
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# --- command-line flags -------------------------------------------------------------------------------


def _is_suppressed(hint: Any) -> bool:
    return typing.get_origin(hint) is Annotated and any(m is Suppress for m in hint.__metadata__)


def _holds_config(hint: Any) -> bool:
    return any(dataclasses.is_dataclass(t) for t in (*typing.get_args(hint), hint))


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def positive_flag(token: str) -> str:
    """A boolean flag's name from either of its command-line forms: '--no-x' -> '--x'; other tokens unchanged."""
    return "--" + token[5:] if token.startswith("--no-") else token


def class_flags(cls: type) -> list[str]:
    """The flags of a config class's own leaf fields (nested sub-configs and suppressed fields excluded)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return [flag_name(f.name) for f in dataclasses.fields(cls)
            if not _holds_config(hints[f.name]) and not _is_suppressed(hints[f.name])]


def flag_values(config: Any) -> dict[str, Any]:
    """'--flag-name' -> value of every leaf a config takes from the command line; a sub-config that is None
    (a part the method does not use) contributes no flags."""
    out = {flag: getattr(config, flag[2:].replace("-", "_")) for flag in class_flags(type(config))}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flag_values(value))
    return out
