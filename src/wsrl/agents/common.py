"""What every learner shares: the train state of one network, and the `Agent` interface the loops use."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, Self, TypeVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


@functools.cache
def adam(learning_rate: float) -> optax.GradientTransformation:
    """One Adam per learning rate, shared by every agent: the optimiser is static in the jitted update, so
    agents built separately (another seed, a restored checkpoint) reuse its compiled program."""
    return optax.adam(learning_rate)


class TrainState(struct.PyTreeNode):
    """Parameters, Adam state, gradient-step counter and (critics only) target parameters of one network."""

    params: Any
    opt_state: Any
    step: jax.Array
    target_params: Any = None
    tx: optax.GradientTransformation = struct.field(pytree_node=False, default=None)

    @classmethod
    def create(cls, params: Any, learning_rate: float, with_target: bool = False) -> TrainState:
        tx = adam(learning_rate)
        target = jax.tree.map(jnp.copy, params) if with_target else None
        return cls(params=params, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32),
                   target_params=target, tx=tx)

    def apply_gradients(self, grads: Any) -> TrainState:
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state,
                            step=self.step + 1)

    def idle_step(self) -> TrainState:
        """An Adam step on a zero gradient (the reference code's bookkeeping, docs/method.md §2.4): the moments
        decay, the parameters move by the momentum left, Adam's own count advances; `step` counts gradient steps
        only and stays."""
        return self.apply_gradients(jax.tree.map(jnp.zeros_like, self.params)).replace(step=self.step)

    def polyak_update(self, tau: float) -> TrainState:
        target = jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, self.params, self.target_params)
        return self.replace(target_params=target)


class Agent(Protocol):
    """A learner: an immutable pytree whose methods are pure, so that `update` jits as a whole.

    The agent is its own checkpoint: `checkpoint.save` writes the whole pytree (parameters, targets, optimiser
    moments, rng) and `meta.json` records `algo` and `config`, from which `agents.agent_from_meta` rebuilds a
    template of the same shapes to restore into.
    """

    config_class: ClassVar[type]
    config: Any
    action_dim: int
    rng: jax.Array
    critic: TrainState

    @classmethod
    def create(cls, config: Any, obs_dim: int, action_dim: int, seed: int) -> Self:
        """A freshly initialised agent; the same seed gives the same parameters."""
        ...

    @property
    def algo(self) -> str:
        """The name a checkpoint records for this learner ('sac', 'cql', 'calql', 'iql')."""
        ...

    def update(self, batch: Batch) -> tuple[Self, Metrics]:
        """One update on utd * batch_size transitions (pure; jit it)."""
        ...

    def sample_actions(self, obs: jax.Array) -> tuple[Self, jax.Array]:
        """Stochastic actions for a batch of observations, advancing the agent's rng (and changing nothing else)."""
        ...

    def eval_actions(self, obs: jax.Array) -> jax.Array:
        """Deterministic evaluation actions for a batch of observations."""
        ...

    def split_rng(self) -> tuple[Self, jax.Array]:
        """The agent with a fresh rng, and a key to use now."""
        ...


A = TypeVar("A")


def stack(agents: Sequence[A]) -> A:
    """Agents of one config (seeds) as one pytree with a leading seed axis: `over_seeds` updates them in one call."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *agents)


@jax.jit
def take(tree: A, k: int) -> A:
    """Seed `k` of stacked agents (or buffers)."""
    return jax.tree.map(lambda leaf: leaf[k], tree)


def over_seeds(fn: Any, *args: Any, vectorise: bool | None = None) -> Any:
    """`fn` applied to each seed's slice of `args` (every leaf has the leading seed axis), outputs stacked.

    One seed runs `fn` itself, so a single-seed run executes the same program as an unstacked agent. Several run
    `jax.vmap(fn)` when `vectorise`, whose batched matmuls may round differently from one seed alone, and otherwise
    `jax.lax.map`, the unbatched program seed after seed: bitwise what each seed computes alone. By default
    (`vectorise=None`) accelerators vectorise and CPUs do not: there the batched program is the slower one (the seeds'
    activations together outgrow the caches; 8 seeds of the `cpu` preset's update, vmap 24-28 vs map 33-42
    seed-updates/s, docs/architecture.md §6).
    """
    if jax.tree.leaves(args)[0].shape[0] == 1:
        return jax.tree.map(lambda leaf: leaf[None], fn(*jax.tree.map(lambda leaf: leaf[0], args)))
    if vectorise is None:
        vectorise = jax.default_backend() != "cpu"
    return jax.vmap(fn)(*args) if vectorise else jax.lax.map(lambda sliced: fn(*sliced), args)


# XLA options for the update programs on CPU (docs/architecture.md §6): the critic ensemble's matmuls compiled as
# plain dots instead of YNNPACK fusions, 12-17% more updates/s on the 2-core CPU machine.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def compiler_options() -> dict[str, str] | None:
    """`CPU_COMPILER_OPTIONS` on CPU when this jaxlib knows them (an older one refuses the option: none), else none."""
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(jnp.negative, compiler_options=CPU_COMPILER_OPTIONS)(jnp.zeros(())).block_until_ready()
    except jax.errors.JaxRuntimeError:
        return None
    return CPU_COMPILER_OPTIONS


class update_jit:  # noqa: N801 - used as a decorator, like jax.jit
    """`jax.jit` for an update program, with `compiler_options()`, decided at the first call (once a backend is up)."""

    def __init__(self, fun: Any = None, **jit_kwargs: Any):
        self._fun, self._kwargs, self._jitted = fun, jit_kwargs, None
        if fun is not None:
            functools.update_wrapper(self, fun)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._fun is None:  # @update_jit(donate_argnums=...)
            return update_jit(args[0], **self._kwargs)
        return self.jitted(*args, **kwargs)

    @property
    def jitted(self) -> Any:
        if self._jitted is None:
            self._jitted = jax.jit(self._fun, compiler_options=compiler_options(), **self._kwargs)
        return self._jitted

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        return self.jitted.lower(*args, **kwargs)


@update_jit(static_argnames=("vectorise",))
def update_seeds(agents: Any, batches: Batch, vectorise: bool | None = None) -> tuple[Any, Metrics]:
    """One update of every stacked agent on its own batch (leading seed axis on both), as one program
    (`vectorise`: as in `over_seeds`)."""
    return over_seeds(lambda agent, batch: agent.update(batch), agents, batches, vectorise=vectorise)


def sample_seeds(agents: A, obs: jax.Array) -> tuple[A, jax.Array]:
    """One stochastic action per stacked agent for its observation (obs: seeds x obs_dim), bitwise what each agent
    alone samples; only the rng is carried through the per-seed loop, not the parameters."""
    def one(agent: Any, o: jax.Array) -> tuple[jax.Array, jax.Array]:
        agent, action = agent.sample_actions(o[None])
        return agent.rng, action[0]

    rngs, actions = over_seeds(one, agents, obs, vectorise=False)
    return agents.replace(rng=rngs), actions
