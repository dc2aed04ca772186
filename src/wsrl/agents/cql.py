"""CQL and Cal-QL (docs/method.md §4): the ensemble SAC learner plus a conservative penalty on the critics.

Cal-QL is CQL with one change (`calql=True`): inside the push-down term the Q-values of policy actions
are clipped from below by the dataset's Monte-Carlo return-to-go.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from wsrl.agents.common import Batch, Metrics, TrainState
from wsrl.agents.sac import SACAgent, sample_critic_subset
from wsrl.config import CQLConfig
from wsrl.nets import Temperature, select_members, tanh_gaussian_sample


def cql_logsumexp(q_rand: jax.Array, q_pi: jax.Array, q_next: jax.Array, q_data: jax.Array, log_pi: jax.Array,
                  log_next: jax.Array, action_dim: int, importance_sample: bool, temp: float) -> jax.Array:
    """The push-up term over sampled actions, (critics, B) from Q's of shape (critics, B, n).

    With importance sampling each proposal's log-density is subtracted (uniform: log 0.5^|A|); without
    it, Q(s, a_data) joins the samples and log N is subtracted (a log-mean-exp).
    """
    if importance_sample:
        uniform_log_density = action_dim * jnp.log(0.5)
        terms = jnp.concatenate([q_rand - uniform_log_density, q_pi - log_pi, q_next - log_next], axis=-1)
        return temp * jax.nn.logsumexp(terms / temp, axis=-1)
    terms = jnp.concatenate([q_rand, q_data[..., None], q_pi, q_next], axis=-1)
    return temp * jax.nn.logsumexp(terms / temp, axis=-1) - jnp.log(terms.shape[-1])


class CQLAgent(SACAgent):
    """SACAgent whose critic loss adds alpha * (logsumexp_a Q(s, a) - Q(s, a_data))."""

    config_class: ClassVar[type] = CQLConfig
    cql_lagrange: TrainState | None = None

    @property
    def algo(self) -> str:
        return "calql" if self.config.calql else "cql"

    @classmethod
    def create(cls, config: CQLConfig, obs_dim: int, action_dim: int, seed: int) -> CQLAgent:
        agent = super().create(config, obs_dim, action_dim, seed)
        if not config.cql_autotune:
            return agent
        params = Temperature(config.cql_initial_alpha).init(jax.random.PRNGKey(seed + 1))["params"]
        return agent.replace(cql_lagrange=TrainState.create(params, config.cql_alpha_lr))

    def cql_alpha_value(self, params: Any = None) -> jax.Array:
        if self.cql_lagrange is None:
            return jnp.asarray(self.config.cql_alpha)
        params = self.cql_lagrange.params if params is None else params
        return Temperature(self.config.cql_initial_alpha).apply({"params": params})

    def cql_penalty(self, params: Any, batch: Batch, key: jax.Array) -> jax.Array:
        """logsumexp over sampled actions minus Q(s, a_data), per penalised critic and state: (k, B)."""
        cfg, n = self.config, self.config.cql_n_actions
        rand_key, pi_key, next_key, subset_key = jax.random.split(key, 4)
        obs = batch["observations"]
        batch_size = obs.shape[0]
        repeat = lambda x: jnp.repeat(x[:, None], n, axis=1)  # noqa: E731
        rand_actions = jax.random.uniform(rand_key, (batch_size, n, self.action_dim), minval=-1.0, maxval=1.0)
        pi_actions, log_pi = tanh_gaussian_sample(pi_key, *map(repeat, self.policy(obs)))
        next_actions, log_next = tanh_gaussian_sample(next_key, *map(repeat, self.policy(batch["next_observations"])))
        if cfg.num_critics > cfg.critic_subset:  # ensemble: penalise a random subset, drawn with replacement
            params = select_members(params, sample_critic_subset(subset_key, cfg.num_critics, cfg.critic_subset, True))
        obs_n = repeat(obs)
        q_rand = self.q_values(obs_n, rand_actions, params)
        q_pi = self.q_values(obs_n, jax.lax.stop_gradient(pi_actions), params)
        q_next = self.q_values(obs_n, jax.lax.stop_gradient(next_actions), params)
        q_data = self.q_values(obs, batch["actions"], params)
        if cfg.calql:  # Cal-QL lower bound on policy actions only (docs/method.md §4)
            bound = batch["mc_returns"][None, :, None]
            q_pi, q_next = jnp.maximum(q_pi, bound), jnp.maximum(q_next, bound)
        lse = cql_logsumexp(q_rand, q_pi, q_next, q_data, jax.lax.stop_gradient(log_pi),
                            jax.lax.stop_gradient(log_next), self.action_dim, cfg.cql_importance_sample, cfg.cql_temp)
        return lse - q_data

    def critic_loss(self, params: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        td_key, penalty_key = jax.random.split(key)
        td_loss, metrics = super().critic_loss(params, batch, td_key)
        penalty = self.cql_penalty(params, batch, penalty_key).mean()
        alpha = jax.lax.stop_gradient(self.cql_alpha_value())
        gap = self.config.cql_target_action_gap if self.cql_lagrange is not None else 0.0
        loss = td_loss + alpha * (penalty - gap)
        return loss, {**metrics, "td_loss": td_loss, "critic_loss": loss, "cql_penalty": penalty, "cql_alpha": alpha}

    def networks(self) -> dict[str, TrainState]:
        lagrange = {} if self.cql_lagrange is None else {"cql_lagrange": self.cql_lagrange}
        return {**super().networks(), **lagrange}

    def lagrange_gradients(self, penalty: jax.Array) -> dict[str, Any]:
        """Gradient of -alpha * (penalty - gap): descent raises alpha while the penalty exceeds the gap."""
        gap = self.config.cql_target_action_gap
        grads = jax.grad(lambda params: -self.cql_alpha_value(params) * (penalty - gap))(self.cql_lagrange.params)
        return {"cql_lagrange": grads}

    def lagrange_on_critic_penalty(self) -> bool:
        """Whether the multiplier steps on the critic loss's own penalty: after every critic step (clean), or in
        the reference's UTD-1 update where every gradient is at the same parameters; else (the reference at high
        UTD) it steps with the actor on the penalty recomputed at the current critics."""
        return not self.config.step_all_optimizers or self.config.utd == 1

    def critic_gradients(self, batch: Batch, key: jax.Array) -> tuple[dict[str, Any], Metrics]:
        grads, metrics = super().critic_gradients(batch, key)
        if self.cql_lagrange is None or not self.lagrange_on_critic_penalty():
            return grads, metrics
        return {**grads, **self.lagrange_gradients(metrics["cql_penalty"])}, metrics

    def actor_gradients(self, batch: Batch, key: jax.Array) -> tuple[dict[str, Any], Metrics]:
        if self.cql_lagrange is None or self.lagrange_on_critic_penalty():
            return super().actor_gradients(batch, key)
        actor_key, penalty_key = jax.random.split(key)
        grads, metrics = super().actor_gradients(batch, actor_key)
        penalty = jax.lax.stop_gradient(self.cql_penalty(self.critic.params, batch, penalty_key).mean())
        return {**grads, **self.lagrange_gradients(penalty)}, metrics
