"""AntMaze: Cal-QL + ensemble with the Lagrange CQL multiplier, then WSRL with max-target backup (docs/method.md §3)."""

from wsrl.config import CQLConfig, IQLConfig, OfflineConfig, OnlineConfig, SACConfig

DEFAULT_ALGO = "calql"
NETWORKS = dict(critic_hidden_dims=(256, 256, 256, 256), actor_hidden_dims=(256, 256),
                last_hidden_init_scale=1e-2, policy_std="uniform")
REWARD = dict(reward_scale=10.0, reward_bias=-5.0)
CQL = CQLConfig(**NETWORKS, cql_autotune=True, cql_target_action_gap=0.8, cql_initial_alpha=1.0, cql_alpha_lr=3e-4,
                cql_importance_sample=True)
IQL = IQLConfig(expectile=0.9, awr_temperature=10.0)


def offline(algo: str = DEFAULT_ALGO) -> OfflineConfig:
    return OfflineConfig(
        algo=algo, steps=1_000_000, **REWARD, sparse_failure_reward=0.0, terminate_on_success=True,
        agent=IQL if algo == "iql" else CQL,
    )


def online() -> OnlineConfig:
    return OnlineConfig(
        env="AntMaze_Large_Diverse_GR-v4", steps=300_000, **REWARD, sparse_failure_reward=0.0,
        terminate_on_success=True,
        agent=SACConfig(**NETWORKS, max_target_backup=True),
    )
