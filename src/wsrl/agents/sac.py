"""Ensemble SAC: the WSRL online learner, SAC (fast) from scratch, and the RLPD settings (docs/method.md §2, §5).

The agent is an immutable pytree. `update(agent, batch)` performs one high-UTD update in one jitted call:
`utd` critic steps on disjoint minibatches (each followed by a Polyak target update) under `lax.scan`,
then one actor step and one temperature step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from wsrl.agents.common import Batch, Metrics, TrainState
from wsrl.config import SACConfig
from wsrl.nets import (
    CriticEnsemble,
    TanhGaussianPolicy,
    Temperature,
    ensemble_size,
    select_members,
    tanh_gaussian_sample,
)


def actor_module(config: SACConfig, action_dim: int) -> TanhGaussianPolicy:
    return TanhGaussianPolicy(action_dim, config.actor_hidden_dims, config.actor_layer_norm,
                              config.last_hidden_init_scale, config.policy_std)


def critic_module(config: SACConfig, num: int) -> CriticEnsemble:
    return CriticEnsemble(num, config.critic_hidden_dims, config.critic_layer_norm, config.last_hidden_init_scale,
                          config.shared_value_head)


def sample_critic_subset(key: jax.Array, num_critics: int, subset: int, replace: bool) -> jax.Array:
    """Indices of the target critics whose minimum forms the TD target (docs/method.md §2.5)."""
    if replace:
        return jax.random.randint(key, (subset,), 0, num_critics)
    return jax.random.choice(key, num_critics, (subset,), replace=False)


def td_target(rewards: jax.Array, masks: jax.Array, next_q: jax.Array, next_log_prob: jax.Array,
              alpha: jax.Array, gamma: float, entropy_backup: bool) -> jax.Array:
    """y = r + gamma * mask * (Q'(s', a') [- alpha * log pi(a'|s') with the entropy backup])."""
    if entropy_backup:
        next_q = next_q - alpha * next_log_prob
    return rewards + gamma * masks * next_q


def critic_mse(q: jax.Array, target: jax.Array) -> jax.Array:
    """Mean over critics and batch of (Q_i(s, a) - y)^2; every critic regresses to the same y."""
    return jnp.mean((q - target[None]) ** 2)


def actor_objective(log_prob: jax.Array, q: jax.Array, alpha: jax.Array, reduction: str) -> jax.Array:
    """mean(alpha * log pi(a|s) - Q(s, a)) with Q reduced over the ensemble by min (WSRL) or mean (RLPD)."""
    q_reduced = q.min(axis=0) if reduction == "min" else q.mean(axis=0)
    return jnp.mean(alpha * log_prob - q_reduced)


def temperature_objective(alpha: jax.Array, entropy: jax.Array, target_entropy: float) -> jax.Array:
    """alpha * (H - H_target): gradient descent raises alpha while entropy is below the target."""
    return alpha * (entropy - target_entropy)


class SACAgent(struct.PyTreeNode):
    """Actor, critic ensemble (with targets), temperature and rng: the whole learner state."""

    config_class: ClassVar[type] = SACConfig
    actor: TrainState
    critic: TrainState
    temperature: TrainState
    rng: jax.Array
    config: SACConfig = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)

    @classmethod
    def create(cls, config: SACConfig, obs_dim: int, action_dim: int, seed: int) -> SACAgent:
        config.validate()
        rng, actor_key, critic_key, temp_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        obs = jnp.zeros((1, obs_dim), jnp.float32)
        act = jnp.zeros((1, action_dim), jnp.float32)
        actor_params = actor_module(config, action_dim).init(actor_key, obs)["params"]
        critic_params = critic_module(config, config.num_critics).init(critic_key, obs, act)["params"]
        temp_params = Temperature(config.initial_temperature).init(temp_key)["params"]
        return cls(
            actor=TrainState.create(actor_params, config.actor_lr),
            critic=TrainState.create(critic_params, config.critic_lr, with_target=True),
            temperature=TrainState.create(temp_params, config.temperature_lr),
            rng=rng,
            config=config,
            action_dim=action_dim,
        )

    @property
    def algo(self) -> str:
        return "sac"

    # --- forward passes -------------------------------------------------------------------------
    def policy(self, obs: jax.Array, params: Any = None) -> tuple[jax.Array, jax.Array]:
        params = self.actor.params if params is None else params
        return actor_module(self.config, self.action_dim).apply({"params": params}, obs)

    def q_values(self, obs: jax.Array, actions: jax.Array, params: Any = None) -> jax.Array:
        params = self.critic.params if params is None else params
        return critic_module(self.config, ensemble_size(params)).apply({"params": params}, obs, actions)

    def alpha(self, params: Any = None) -> jax.Array:
        params = self.temperature.params if params is None else params
        return Temperature(self.config.initial_temperature).apply({"params": params})

    def split_rng(self, num: int = 1) -> tuple[SACAgent, jax.Array]:
        keys = jax.random.split(self.rng, num + 1)
        return self.replace(rng=keys[0]), (keys[1] if num == 1 else keys[1:])

    # --- losses (docs/method.md §2.5-2.7) --------------------------------------------------------------
    def next_state_value(self, batch: Batch, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Subset-min target Q at a' ~ pi(.|s') (max over sampled a' with the max-target backup)."""
        cfg = self.config
        action_key, subset_key = jax.random.split(key)
        n = cfg.backup_actions if cfg.max_target_backup else 1
        mean, std = self.policy(batch["next_observations"])
        mean, std = (jnp.repeat(x[:, None], n, axis=1) for x in (mean, std))  # (B, n, A)
        next_actions, next_log_prob = tanh_gaussian_sample(action_key, mean, std)
        next_obs = jnp.repeat(batch["next_observations"][:, None], n, axis=1)
        subset = sample_critic_subset(subset_key, cfg.num_critics, cfg.critic_subset,
                                      cfg.subset_with_replacement)
        next_q = self.q_values(next_obs, next_actions, select_members(self.critic.target_params, subset))
        next_q = next_q.min(axis=0)  # (B, n)
        best = jnp.argmax(next_q, axis=1)[:, None]
        return (jnp.take_along_axis(next_q, best, axis=1)[:, 0],
                jnp.take_along_axis(next_log_prob, best, axis=1)[:, 0])

    def critic_loss(self, params: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        next_q, next_log_prob = self.next_state_value(batch, key)
        target = jax.lax.stop_gradient(td_target(batch["rewards"], batch["masks"], next_q, next_log_prob,
                                                 self.alpha(), self.config.gamma, self.config.entropy_backup))
        q = self.q_values(batch["observations"], batch["actions"], params)
        loss = critic_mse(q, target)
        return loss, {"critic_loss": loss, "q_mean": q.mean(), "target_q_mean": target.mean()}

    def actor_loss(self, params: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        mean, std = self.policy(batch["observations"], params)
        actions, log_prob = tanh_gaussian_sample(key, mean, std)
        q = self.q_values(batch["observations"], actions)
        loss = actor_objective(log_prob, q, jax.lax.stop_gradient(self.alpha()),
                               self.config.actor_critic_reduction)
        return loss, {"actor_loss": loss}

    def policy_entropy(self, batch: Batch, key: jax.Array) -> jax.Array:
        """-mean log pi(a'|s') of actions sampled at the batch's next observations."""
        mean, std = self.policy(batch["next_observations"])
        _, log_prob = tanh_gaussian_sample(key, mean, std)
        return -log_prob.mean()

    def temperature_loss(self, params: Any, entropy: jax.Array) -> tuple[jax.Array, Metrics]:
        alpha = self.alpha(params)
        target = self.config.target_entropy_per_dim * self.action_dim
        loss = temperature_objective(alpha, entropy, target)
        return loss, {"temperature_loss": loss, "temperature": alpha, "entropy": entropy}

    # --- updates (docs/method.md §2.4, §2.8) ----------------------------------------------------------
    def networks(self) -> dict[str, TrainState]:
        """The trained networks by name."""
        return {"actor": self.actor, "critic": self.critic, "temperature": self.temperature}

    def apply(self, grads: dict[str, Any]) -> SACAgent:
        """One Adam step of every network in `grads`, then a Polyak target update if the critic stepped.

        With `step_all_optimizers` (the reference code) every other network's Adam steps as well, on a zero
        gradient (`TrainState.idle_step`).
        """
        states = {}
        for name, state in self.networks().items():
            if name in grads:
                states[name] = state.apply_gradients(grads[name])
            elif self.config.step_all_optimizers:
                states[name] = state.idle_step()
        if "critic" in grads:
            states["critic"] = states["critic"].polyak_update(self.config.tau)
        return self.replace(**states)

    def critic_gradients(self, batch: Batch, key: jax.Array) -> tuple[dict[str, Any], Metrics]:
        grads, metrics = jax.grad(self.critic_loss, has_aux=True)(self.critic.params, batch, key)
        return {"critic": grads}, metrics

    def actor_gradients(self, batch: Batch, key: jax.Array) -> tuple[dict[str, Any], Metrics]:
        """The actor's and the temperature's gradients, both at the current parameters."""
        actor_key, entropy_key = jax.random.split(key)
        actor_grads, actor_metrics = jax.grad(self.actor_loss, has_aux=True)(self.actor.params, batch, actor_key)
        entropy = jax.lax.stop_gradient(self.policy_entropy(batch, entropy_key))
        temp_grads, temp_metrics = jax.grad(self.temperature_loss, has_aux=True)(self.temperature.params, entropy)
        return {"actor": actor_grads, "temperature": temp_grads}, {**actor_metrics, **temp_metrics}

    def update_critic(self, batch: Batch) -> tuple[SACAgent, Metrics]:
        """One critic gradient step followed by one Polyak target update."""
        agent, key = self.split_rng()
        grads, metrics = agent.critic_gradients(batch, key)
        return agent.apply(grads), metrics

    def update_actor_and_temperature(self, batch: Batch) -> tuple[SACAgent, Metrics]:
        """One actor step and one temperature step."""
        agent, key = self.split_rng()
        grads, metrics = agent.actor_gradients(batch, key)
        return agent.apply(grads), metrics

    def update(self, batch: Batch) -> tuple[SACAgent, Metrics]:
        """High-UTD update on utd * batch_size transitions: utd critic steps on disjoint minibatches, then one
        actor and temperature step; at UTD 1 with `step_all_optimizers`, the reference's update of all networks
        at once (every gradient at the same parameters)."""
        utd, size = self.config.utd, self.config.batch_size
        if utd == 1 and self.config.step_all_optimizers:
            agent, (critic_key, actor_key) = self.split_rng(2)
            critic_grads, critic_metrics = agent.critic_gradients(batch, critic_key)
            actor_grads, actor_metrics = agent.actor_gradients(batch, actor_key)
            return agent.apply({**critic_grads, **actor_grads}), {**critic_metrics, **actor_metrics}
        minibatches = jax.tree.map(lambda x: x.reshape(utd, size, *x.shape[1:]), batch)

        def critic_step(agent: SACAgent, minibatch: Batch) -> tuple[SACAgent, Metrics]:
            return agent.update_critic(minibatch)

        agent, critic_metrics = jax.lax.scan(critic_step, self, minibatches)
        actor_batch = batch if self.config.actor_on_full_batch else jax.tree.map(lambda x: x[-1], minibatches)
        agent, actor_metrics = agent.update_actor_and_temperature(actor_batch)
        return agent, {**jax.tree.map(jnp.mean, critic_metrics), **actor_metrics}

    # --- acting -----------------------------------------------------------------------------------
    def sample_actions(self, obs: jax.Array) -> tuple[SACAgent, jax.Array]:
        """Stochastic actions a ~ pi(.|s), advancing the agent's rng."""
        agent, key = self.split_rng()
        mean, std = agent.policy(obs)
        actions, _ = tanh_gaussian_sample(key, mean, std)
        return agent, actions

    def eval_actions(self, obs: jax.Array) -> jax.Array:
        """Deterministic evaluation actions tanh(mean)."""
        mean, _ = self.policy(obs)
        return jnp.tanh(mean)


@jax.jit
def update(agent: SACAgent, batch: Batch) -> tuple[SACAgent, Metrics]:
    """Jitted `SACAgent.update`."""
    return agent.update(batch)
