"""Implicit Q-Learning (docs/method.md §4): expectile value regression, TD critics on V(s'), AWR actor."""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from wsrl.agents.common import Batch, Metrics, TrainState
from wsrl.agents.sac import critic_mse
from wsrl.config import IQLConfig
from wsrl.nets import CriticEnsemble, GaussianPolicy, ValueFunction, gaussian_log_prob

AWR_MAX_WEIGHT = 100.0


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """mean(|tau - 1(u < 0)| * u^2) with u = Q - V."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(weight * diff**2)


def awr_weights(q: jax.Array, v: jax.Array, temperature: float) -> jax.Array:
    """exp(beta * (Q - V)) clipped at 100."""
    return jnp.minimum(jnp.exp(temperature * (q - v)), AWR_MAX_WEIGHT)


class IQLAgent(struct.PyTreeNode):
    """Actor, Q-functions (with targets), value function and rng."""

    config_class: ClassVar[type] = IQLConfig
    actor: TrainState
    critic: TrainState
    value: TrainState
    rng: jax.Array
    config: IQLConfig = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)

    @classmethod
    def create(cls, config: IQLConfig, obs_dim: int, action_dim: int, seed: int) -> IQLAgent:
        config.validate()
        rng, actor_key, critic_key, value_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
        agent = cls(actor=None, critic=None, value=None, rng=rng, config=config, action_dim=action_dim)
        return agent.replace(
            actor=TrainState.create(agent._actor().init(actor_key, obs)["params"], config.actor_lr),
            critic=TrainState.create(agent._critic().init(critic_key, obs, act)["params"],
                                     config.critic_lr, with_target=True),
            value=TrainState.create(agent._value().init(value_key, obs)["params"], config.value_lr),
        )

    @property
    def algo(self) -> str:
        return "iql"

    def _actor(self) -> GaussianPolicy:
        c = self.config
        return GaussianPolicy(self.action_dim, c.actor_hidden_dims, c.layer_norm, c.actor_last_hidden_init_scale,
                              c.actor_dropout)

    def _critic(self) -> CriticEnsemble:
        """The reference's IQL critics: variance-scaling MLPs sharing one value head."""
        return CriticEnsemble(self.config.num_critics, self.config.critic_hidden_dims, self.config.layer_norm,
                              shared_head=True, init_kind="variance_scaling")

    def _value(self) -> ValueFunction:
        return ValueFunction(self.config.critic_hidden_dims, self.config.layer_norm)

    def split_rng(self) -> tuple[IQLAgent, jax.Array]:
        rng, key = jax.random.split(self.rng)
        return self.replace(rng=rng), key

    def target_q(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        return self._critic().apply({"params": self.critic.target_params}, obs, actions).min(axis=0)

    def v(self, obs: jax.Array, params: Any = None) -> jax.Array:
        return self._value().apply({"params": self.value.params if params is None else params}, obs)

    # --- losses (docs/method.md §4) ----------------------------------------------------------------------
    def value_loss(self, params: Any, batch: Batch) -> tuple[jax.Array, Metrics]:
        q = jax.lax.stop_gradient(self.target_q(batch["observations"], batch["actions"]))
        v = self.v(batch["observations"], params)
        loss = expectile_loss(q - v, self.config.expectile)
        return loss, {"value_loss": loss, "v_mean": v.mean()}

    def critic_loss(self, params: Any, batch: Batch) -> tuple[jax.Array, Metrics]:
        target = batch["rewards"] + self.config.gamma * batch["masks"] * self.v(batch["next_observations"])
        q = self._critic().apply({"params": params}, batch["observations"], batch["actions"])
        loss = critic_mse(q, jax.lax.stop_gradient(target))
        return loss, {"critic_loss": loss, "q_mean": q.mean(), "target_q_mean": target.mean()}

    def actor_loss(self, params: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        weights = awr_weights(self.target_q(batch["observations"], batch["actions"]), self.v(batch["observations"]),
                              self.config.awr_temperature)
        mean, std = self._actor().apply({"params": params}, batch["observations"], train=True, rngs={"dropout": key})
        loss = -jnp.mean(jax.lax.stop_gradient(weights) * gaussian_log_prob(mean, std, batch["actions"]))
        return loss, {"actor_loss": loss, "awr_weight_mean": weights.mean()}

    def update(self, batch: Batch) -> tuple[IQLAgent, Metrics]:
        """Value, actor and critic steps, then the target update. With `step_all_optimizers` (the reference
        code) every gradient is taken at the same parameters; without, the actor and critics use the new V."""
        agent, key = self.split_rng()
        grads, value_metrics = jax.grad(agent.value_loss, has_aux=True)(agent.value.params, batch)
        stepped = agent.replace(value=agent.value.apply_gradients(grads))
        judge = agent if agent.config.step_all_optimizers else stepped  # whose V the actor and critic losses read
        actor_grads, actor_metrics = jax.grad(judge.actor_loss, has_aux=True)(agent.actor.params, batch, key)
        critic_grads, critic_metrics = jax.grad(judge.critic_loss, has_aux=True)(agent.critic.params, batch)
        agent = stepped.replace(actor=agent.actor.apply_gradients(actor_grads),
                                critic=agent.critic.apply_gradients(critic_grads).polyak_update(agent.config.tau))
        return agent, {**value_metrics, **actor_metrics, **critic_metrics}

    # --- acting -------------------------------------------------------------------------------------
    def sample_actions(self, obs: jax.Array) -> tuple[IQLAgent, jax.Array]:
        agent, key = self.split_rng()
        mean, std = agent._actor().apply({"params": agent.actor.params}, obs)
        return agent, jnp.clip(mean + std * jax.random.normal(key, mean.shape), -1.0, 1.0)

    def eval_actions(self, obs: jax.Array) -> jax.Array:
        return self._actor().apply({"params": self.actor.params}, obs)[0]
