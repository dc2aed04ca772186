"""Adroit binary (pen, door, relocate): Cal-QL + ensemble (alpha 1), then WSRL (docs/method.md §3).

Rewards are -1 / 0 from the goal-achieved flag, then scaled by 10 and shifted by +5.
"""

from wsrl.config import CQLConfig, IQLConfig, OfflineConfig, OnlineConfig, SACConfig

DEFAULT_ALGO = "calql"
NETWORKS = dict(critic_hidden_dims=(512, 512, 512), actor_hidden_dims=(512, 512),
                last_hidden_init_scale=1e-2, policy_std="exp")
REWARD = dict(reward_scale=10.0, reward_bias=5.0)
CQL = CQLConfig(**NETWORKS, cql_alpha=1.0, cql_autotune=False, cql_importance_sample=True)
IQL = IQLConfig(expectile=0.7, awr_temperature=0.5, actor_dropout=0.1)


def offline(algo: str = DEFAULT_ALGO) -> OfflineConfig:
    return OfflineConfig(
        algo=algo, steps=20_000, **REWARD, sparse_failure_reward=-1.0, binary_reward=True,
        terminate_on_success=True,
        agent=IQL if algo == "iql" else CQL,
    )


def online() -> OnlineConfig:
    return OnlineConfig(
        env="AdroitHandPen-v1", steps=300_000, **REWARD, sparse_failure_reward=-1.0, binary_reward=True,
        terminate_on_success=True,
        agent=SACConfig(**NETWORKS, max_target_backup=False),
    )
