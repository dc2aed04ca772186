"""Franka Kitchen: Cal-QL + ensemble (alpha 5, no importance sampling), then WSRL (METHOD.md §3)."""

from wsrl.agents.cql import CQLConfig
from wsrl.agents.sac import SACConfig
from wsrl.train.offline import OfflineConfig
from wsrl.train.online import OnlineConfig

NETWORKS = dict(critic_hidden_dims=(512, 512, 512), actor_hidden_dims=(512, 512, 512),
                actor_last_hidden_init_scale=None, policy_std="exp")
REWARD = dict(reward_scale=1.0, reward_bias=-4.0)


def offline() -> OfflineConfig:
    return OfflineConfig(algo="calql", steps=250_000, **REWARD, sparse_failure_reward=0.0,
                         agent=CQLConfig(**NETWORKS, cql_alpha=5.0, cql_importance_sample=False))


def online() -> OnlineConfig:
    return OnlineConfig(env="FrankaKitchen-v1", steps=300_000, **REWARD,
                        agent=SACConfig(**NETWORKS, max_target_backup=False))
