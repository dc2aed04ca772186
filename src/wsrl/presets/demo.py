"""The demo task: InvertedPendulum-v5 from random data, the locomotion recipe with 2x64 networks.

Same algorithms and ensemble logic as the paper's presets (CQL + 10-critic ensemble, then WSRL with K warmup
steps, UTD 4, subset 2); only the widths and budgets are cut so that the whole pipeline runs in minutes on a CPU.
"""

from wsrl.config import CQLConfig, IQLConfig, OfflineConfig, OnlineConfig, SACConfig

DEFAULT_ALGO = "cql"
ENV = "InvertedPendulum-v5"
NETWORKS = dict(critic_hidden_dims=(64, 64), actor_hidden_dims=(64, 64), last_hidden_init_scale=1e-2,
                policy_std="exp")
CQL = CQLConfig(**NETWORKS, cql_alpha=5.0, cql_autotune=False, cql_importance_sample=True)
IQL = IQLConfig(actor_hidden_dims=(64, 64), critic_hidden_dims=(64, 64), expectile=0.7, awr_temperature=3.0)


def offline(algo: str = DEFAULT_ALGO) -> OfflineConfig:
    return OfflineConfig(algo=algo, env=ENV, steps=5000, eval_every=1000, eval_episodes=5, log_every=500,
                         agent=IQL if algo == "iql" else CQL)


def online() -> OnlineConfig:
    return OnlineConfig(env=ENV, steps=10_000, warmup_steps=1000, eval_every=1000, eval_episodes=5, log_every=500,
                        agent=SACConfig(**NETWORKS, max_target_backup=False))
