"""Locomotion (Hopper, HalfCheetah, Walker2d, Ant): CQL + ensemble pre-training, then WSRL (METHOD.md §3)."""

from wsrl.agents.cql import CQLConfig
from wsrl.agents.sac import SACConfig
from wsrl.train.offline import OfflineConfig
from wsrl.train.online import OnlineConfig

NETWORKS = dict(critic_hidden_dims=(256, 256), actor_hidden_dims=(256, 256), actor_last_hidden_init_scale=1e-2,
                policy_std="exp")


def offline() -> OfflineConfig:
    return OfflineConfig(algo="cql", steps=250_000, reward_scale=1.0, reward_bias=0.0,
                         agent=CQLConfig(**NETWORKS, cql_alpha=5.0, cql_autotune=False, cql_importance_sample=True))


def online() -> OnlineConfig:
    return OnlineConfig(env="Hopper-v5", steps=250_000, reward_scale=1.0, reward_bias=0.0,
                        agent=SACConfig(**NETWORKS, max_target_backup=False))
