"""Locomotion (Hopper, HalfCheetah, Walker2d, Ant): CQL + ensemble pre-training, then WSRL (docs/method.md §3)."""

from wsrl.config import CQLConfig, IQLConfig, OfflineConfig, OnlineConfig, SACConfig

DEFAULT_ALGO = "cql"
NETWORKS = dict(critic_hidden_dims=(256, 256), actor_hidden_dims=(256, 256), last_hidden_init_scale=1e-2,
                policy_std="exp")
REWARD = dict(reward_scale=1.0, reward_bias=0.0)
CQL = CQLConfig(**NETWORKS, cql_alpha=5.0, cql_autotune=False, cql_importance_sample=True)
IQL = IQLConfig(expectile=0.7, awr_temperature=3.0)


def offline(algo: str = DEFAULT_ALGO) -> OfflineConfig:
    return OfflineConfig(
        algo=algo, steps=250_000, **REWARD,
        agent=IQL if algo == "iql" else CQL,
    )


def online() -> OnlineConfig:
    return OnlineConfig(
        env="Hopper-v5", steps=250_000, **REWARD,
        agent=SACConfig(**NETWORKS, max_target_backup=False),
    )
