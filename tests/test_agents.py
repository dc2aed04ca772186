"""One conformance test that every learner passes: a new learner gets it by adding one line to LEARNERS."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ACTION_DIM, OBS_DIM, TINY, random_batch

from wsrl import checkpoint
from wsrl.agents import agent_from_meta
from wsrl.agents.common import stack, take, update_jit, update_seeds
from wsrl.agents.cql import CQLAgent
from wsrl.agents.iql import IQLAgent
from wsrl.agents.sac import SACAgent
from wsrl.config import ALGO_CONFIGS, CQLConfig, IQLConfig

TINY_CQL = CQLConfig(**{f.name: getattr(TINY, f.name) for f in dataclasses.fields(TINY) if f.name != "utd"},
                     cql_n_actions=3)
LEARNERS = {  # algo -> (agent class, tiny config)
    "sac": (SACAgent, TINY),
    "cql": (CQLAgent, TINY_CQL),
    "calql": (CQLAgent, dataclasses.replace(TINY_CQL, calql=True, cql_autotune=True)),
    "iql": (IQLAgent, IQLConfig(actor_hidden_dims=(8,), critic_hidden_dims=(8, 8), batch_size=5, actor_dropout=0.1)),
}


def test_every_registered_learner_has_a_conformance_entry():
    from wsrl import agents

    assert sorted(LEARNERS) == sorted(agents.LEARNERS)
    assert all(agents.LEARNERS[algo].agent is cls for algo, (cls, _) in LEARNERS.items())
    assert all(ALGO_CONFIGS[algo] is learner.agent.config_class for algo, learner in agents.LEARNERS.items())


update = update_jit(lambda agent, batch: agent.update(batch))  # compiled as wsrl compiles its updates


def batch_for(agent, seed=0):
    batch = random_batch(agent.config.utd * agent.config.batch_size, seed)
    return {**batch, "mc_returns": jnp.asarray(np.random.default_rng(seed).normal(size=len(batch["rewards"])),
                                               jnp.float32)}


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_learner_conformance(tmp_path, algo):
    cls, config = LEARNERS[algo]
    agent = cls.create(config, OBS_DIM, ACTION_DIM, seed=0)
    assert agent.algo == algo
    batch = batch_for(agent)

    # update: finite metrics, every network's parameters move
    new, metrics = update(agent, batch)
    assert metrics and all(np.isfinite(float(v)) for v in metrics.values())
    for net in ("actor", "critic"):
        before, after = jax.tree.leaves(getattr(agent, net).params), jax.tree.leaves(getattr(new, net).params)
        assert any(not np.array_equal(x, y) for x, y in zip(before, after, strict=True)), net

    # checkpoint -> restore into a template rebuilt from meta.json alone (another seed): the same agent
    directory = checkpoint.save(new, tmp_path / "ckpt", checkpoint.metadata(new, OBS_DIM, ACTION_DIM, None, 0))
    meta = checkpoint.load_meta(directory)
    assert (meta["algo"], meta["grad_step"]) == (algo, int(new.critic.step))
    restored = checkpoint.restore(agent_from_meta(meta, seed=123), directory)
    assert type(restored) is cls and restored.config == new.config and leaves_equal(restored, new)
    obs = batch["observations"][:4]
    np.testing.assert_array_equal(restored.eval_actions(obs), new.eval_actions(obs))
    np.testing.assert_array_equal(restored.sample_actions(obs)[1], new.sample_actions(obs)[1])
    next_a, metrics_a = update(new, batch_for(new, seed=1))
    next_b, metrics_b = update(restored, batch_for(new, seed=1))
    assert leaves_equal(next_a, next_b)
    assert {k: float(v) for k, v in metrics_a.items()} == {k: float(v) for k, v in metrics_b.items()}

    # same seed, same numbers; another seed, others
    def run(seed):
        learner = cls.create(config, OBS_DIM, ACTION_DIM, seed)
        for _ in range(2):
            learner, out = update(learner, batch)
        return {k: float(v) for k, v in out.items()}

    assert run(0) == run(0) and run(0) != run(1)


@pytest.mark.parametrize("vectorise", [False, True])  # seed after seed (CPU's default), vmapped (accelerators')
@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_seeds_stacked_in_one_update_equal_each_seed_alone(algo, vectorise):
    """Seed k of a multi-seed update is the same experiment as seed k alone: bitwise seed after seed, up to float
    rounding vmapped."""
    cls, config = LEARNERS[algo]
    seeds = [cls.create(config, OBS_DIM, ACTION_DIM, seed) for seed in (0, 1, 2)]
    batches = [batch_for(agent, seed) for seed, agent in enumerate(seeds)]
    together, metrics = update_seeds(stack(seeds), jax.tree.map(lambda *x: jnp.stack(x), *batches),
                                     vectorise=vectorise)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if vectorise else {"rtol": 0, "atol": 0}
    for k, (agent, batch, joint) in enumerate(zip(seeds, batches, [take(together, k) for k in range(3)], strict=True)):
        alone, alone_metrics = update(agent, batch)
        for got, want in zip(jax.tree.leaves(joint), jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(got, want, **tolerance)
        for name, value in alone_metrics.items():
            np.testing.assert_allclose(metrics[name][k], value, **tolerance)


def test_compiler_options_a_jaxlib_refuses_are_dropped(monkeypatch):
    from wsrl.agents import common

    monkeypatch.setattr(common, "CPU_COMPILER_OPTIONS", {"xla_cpu_no_such_option": ""})
    common.compiler_options.cache_clear()
    try:
        assert common.compiler_options() is None
        program = common.update_jit(lambda x: 2 * x)  # compiles without them
        assert float(program(jnp.ones(()))) == 2.0
    finally:
        common.compiler_options.cache_clear()
