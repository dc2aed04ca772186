"""Locomotion (Hopper, HalfCheetah, Walker2d, Ant): WSRL online phase after CQL + ensemble (METHOD.md §3)."""

from wsrl.agents.sac import SACConfig
from wsrl.train.online import OnlineConfig


def online() -> OnlineConfig:
    """WSRL fine-tuning: K = 5000, UTD 4, 10 critics (subset 2 with replacement), 2x256 LayerNorm MLPs."""
    return OnlineConfig(
        env="Hopper-v5",
        steps=250_000,
        warmup_steps=5000,
        warmup_policy="pretrained",
        eval_every=20_000,
        eval_episodes=20,
        buffer_capacity=2_000_000,
        reward_scale=1.0,
        reward_bias=0.0,
        agent=SACConfig(
            actor_hidden_dims=(256, 256),
            critic_hidden_dims=(256, 256),
            actor_layer_norm=True,
            critic_layer_norm=True,
            actor_last_hidden_init_scale=1e-2,
            policy_std="exp",
            num_critics=10,
            critic_subset=2,
            subset_with_replacement=True,
            actor_critic_reduction="min",
            entropy_backup=False,
            target_entropy_per_dim=-1.0,
            max_target_backup=False,
            utd=4,
            batch_size=256,
            actor_on_full_batch=True,
            actor_lr=1e-4,
            critic_lr=3e-4,
            temperature_lr=1e-4,
            initial_temperature=1.0,
            gamma=0.99,
            tau=5e-3,
        ),
    )
