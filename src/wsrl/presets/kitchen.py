"""Franka Kitchen: Cal-QL + ensemble (alpha 5, no importance sampling), then WSRL (docs/method.md §3)."""

from wsrl.config import CQLConfig, IQLConfig, OfflineConfig, OnlineConfig, SACConfig

DEFAULT_ALGO = "calql"
NETWORKS = dict(critic_hidden_dims=(512, 512, 512), actor_hidden_dims=(512, 512, 512),
                last_hidden_init_scale=None, policy_std="exp")
REWARD = dict(reward_scale=1.0, reward_bias=-4.0)
CQL = CQLConfig(**NETWORKS, cql_alpha=5.0, cql_autotune=False, cql_importance_sample=False)
IQL = IQLConfig(expectile=0.7, awr_temperature=0.5, actor_dropout=0.1)


def offline(algo: str = DEFAULT_ALGO) -> OfflineConfig:
    return OfflineConfig(
        algo=algo, steps=250_000, **REWARD, sparse_failure_reward=0.0, terminate_on_success=True,
        agent=IQL if algo == "iql" else CQL,
    )


def online() -> OnlineConfig:
    return OnlineConfig(
        env="FrankaKitchen-v1", steps=300_000, **REWARD, sparse_failure_reward=0.0, terminate_on_success=True,
        agent=SACConfig(**NETWORKS, max_target_backup=False),
    )
