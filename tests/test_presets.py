import dataclasses

import jax
import pytest
from flax import serialization

from wsrl.agents.cql import CQLAgent
from wsrl.agents.sac import SACAgent
from wsrl.presets import PRESETS, offline_preset, online_preset

# docs/method.md §3: family -> (algo, offline steps, critic MLP, actor MLP, last-hidden scale, std, online max-target,
#                          CQL alpha (None = Lagrange), importance sampling, reward scale, reward bias)
TABLE = {
    "antmaze": ("calql", 1_000_000, (256,) * 4, (256,) * 2, 1e-2, "uniform", True, None, True, 10.0, -5.0),
    "kitchen": ("calql", 250_000, (512,) * 3, (512,) * 3, None, "exp", False, 5.0, False, 1.0, -4.0),
    "adroit": ("calql", 20_000, (512,) * 3, (512,) * 2, 1e-2, "exp", False, 1.0, True, 10.0, 5.0),
    "locomotion": ("cql", 250_000, (256,) * 2, (256,) * 2, 1e-2, "exp", False, 5.0, True, 1.0, 0.0),
}
IQL_TABLE = {"antmaze": (0.9, 10.0, 0.0), "adroit": (0.7, 0.5, 0.1), "kitchen": (0.7, 0.5, 0.1),
             "locomotion": (0.7, 3.0, 0.0)}


@pytest.mark.parametrize("family", sorted(TABLE))
def test_presets_hold_the_papers_numbers(family):
    algo, steps, critic, actor, scale, std, max_target, alpha, importance, r_scale, r_bias = TABLE[family]
    off, on = offline_preset(family), online_preset(family)
    assert set(PRESETS) == set(TABLE) | {"demo", "cpu", "cpu-maze"}
    assert (off.algo, off.steps, off.reward_scale, off.reward_bias) == (algo, steps, r_scale, r_bias)
    assert (on.reward_scale, on.reward_bias) == (r_scale, r_bias)
    for agent in (off.agent, on.agent):
        assert (agent.critic_hidden_dims, agent.actor_hidden_dims) == (critic, actor)
        assert (agent.last_hidden_init_scale, agent.policy_std) == (scale, std)
        assert agent.shared_value_head and agent.step_all_optimizers  # as the reference code (method.md §2.9)
        assert (agent.num_critics, agent.critic_subset, agent.subset_with_replacement) == (10, 2, True)
        assert agent.actor_layer_norm and agent.critic_layer_norm
        assert (agent.gamma, agent.tau, agent.backup_actions) == (0.99, 5e-3, 10)
    assert off.agent.max_target_backup and on.agent.max_target_backup == max_target
    assert (off.agent.utd, off.agent.batch_size) == (1, 256)
    if alpha is None:
        assert off.agent.cql_autotune
        c = off.agent
        assert (c.cql_target_action_gap, c.cql_initial_alpha, c.cql_alpha_lr) == (0.8, 1.0, 3e-4)
    else:
        assert not off.agent.cql_autotune and off.agent.cql_alpha == alpha
    assert (off.agent.cql_importance_sample, off.agent.cql_n_actions, off.agent.cql_temp) == (importance, 10, 1.0)
    # WSRL online phase, docs/method.md §2
    assert (on.warmup_steps, on.warmup_policy, on.buffer_capacity) == (5000, "pretrained", 2_000_000)
    a = on.agent
    assert (a.utd, a.batch_size, a.actor_on_full_batch) == (4, 256, True)
    assert (a.actor_lr, a.critic_lr, a.temperature_lr, a.initial_temperature) == (1e-4, 3e-4, 1e-4, 1.0)
    assert (a.entropy_backup, a.target_entropy_per_dim, a.actor_critic_reduction) == (False, -1.0, "min")
    assert (on.eval_every, on.eval_episodes) == (20_000, 20)
    assert on.terminate_on_success == (family != "locomotion") == off.terminate_on_success
    assert on.binary_reward == (family == "adroit") == off.binary_reward
    assert on.sparse_failure_reward == off.sparse_failure_reward
    expectile, temperature, dropout = IQL_TABLE[family]
    iql = offline_preset(family, "iql").agent
    assert (iql.expectile, iql.awr_temperature, iql.actor_dropout) == (expectile, temperature, dropout)
    assert (iql.num_critics, iql.critic_hidden_dims, iql.actor_lr, iql.critic_lr, iql.value_lr, iql.tau) == (
        2, (256, 256), 3e-4, 3e-4, 3e-4, 5e-3)
    assert iql.actor_last_hidden_init_scale == 1e-2 and iql.step_all_optimizers


@pytest.mark.slow
@pytest.mark.parametrize("family", ["antmaze", "adroit"])
def test_pretrained_checkpoint_shapes_fit_the_online_agent_of_the_same_preset(family):
    obs_dim, action_dim = 7, 3
    offline = CQLAgent.create(offline_preset(family).agent, obs_dim, action_dim, 0)
    online = SACAgent.create(online_preset(family).agent, obs_dim, action_dim, 0)
    for net in ("actor", "critic", "temperature"):
        shapes = [jax.tree.map(lambda x: x.shape, serialization.to_state_dict(getattr(agent, net)))
                  for agent in (offline, online)]
        assert shapes[0] == shapes[1]


@pytest.mark.parametrize("name, family, critic, env", [
    ("cpu", "locomotion", (64, 64), "Hopper-v5"),
    ("cpu-maze", "antmaze", (64, 64, 64, 64), "PointMaze_UMaze-v3"),
])
def test_cpu_presets_are_the_paper_recipe_with_only_the_documented_cuts(name, family, critic, env):
    """The reduced budgets change widths, budgets, warmup, evaluation (and cpu-maze's default env); every
    algorithmic setting stays the paper's."""
    assert PRESETS[name].DEFAULT_ALGO == PRESETS[family].DEFAULT_ALGO
    for algo in ("calql", "cql", "iql"):
        small, paper = offline_preset(name, algo), offline_preset(family, algo)
        iql_critic = (64, 64)  # IQL's critics are 2x256 in every family
        networks = dict(critic_hidden_dims=iql_critic if algo == "iql" else critic, actor_hidden_dims=(64, 64))
        assert small.agent == dataclasses.replace(paper.agent, **networks)
        assert small == dataclasses.replace(paper, steps=5000, eval_every=1000, eval_episodes=5, agent=small.agent)
    small, paper = online_preset(name), online_preset(family)
    assert small.agent == dataclasses.replace(paper.agent, critic_hidden_dims=critic, actor_hidden_dims=(64, 64))
    assert small == dataclasses.replace(paper, env=env, steps=10_000, warmup_steps=2000, eval_every=1000,
                                        eval_episodes=5, log_every=500, agent=small.agent)
    assert small.warmup_steps > small.agent.utd * small.agent.batch_size  # so that no-warmup differs from WSRL
