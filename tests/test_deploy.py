"""`wsrl export` and `wsrl.deploy.NumpyPolicy`: the JAX policy's actions with numpy alone, in the env's units."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import jax.numpy as jnp
import numpy as np
import pytest

import wsrl
from wsrl.cli import main
from wsrl.deploy import NumpyPolicy

SMALL = dict(critic_hidden_dims=(16, 16), actor_hidden_dims=(16, 8), num_critics=2, batch_size=8, eval_episodes=1)


def _arrays(steps=300, seed=0):
    """Random-action steps of InvertedPendulum-v5, whose actions are in [-3, 3]."""
    env, rng = gym.make("InvertedPendulum-v5"), np.random.default_rng(seed)
    keys = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
    log = {k: [] for k in keys}
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = rng.uniform(-3, 3, 1).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(keys, (obs, action, reward, terminated, truncated, next_obs), strict=True):
            log[key].append(value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return {k: np.asarray(v) for k, v in log.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    data = _arrays()
    iql = wsrl.pretrain(data, preset="cpu", algo="iql", env="InvertedPendulum-v5", out=root / "iql", steps=20,
                        eval_every=20, critic_hidden_dims=(16, 16), actor_hidden_dims=(16, 8), batch_size=8,
                        eval_episodes=1)
    sac = wsrl.train("InvertedPendulum-v5", preset="cpu", out=root / "sac", steps=300, warmup_steps=100,
                     eval_every=300, **SMALL)
    uniform = wsrl.train("InvertedPendulum-v5", preset="cpu", out=root / "uniform", steps=150, warmup_steps=100,
                         eval_every=150, policy_std="uniform", actor_layer_norm=False, **SMALL)
    yield {"sac": sac, "uniform": uniform, "iql": iql}, root
    mp.undo()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sac", "uniform", "iql"])
def test_exported_policy_acts_as_the_jax_policy_in_the_env_units(runs, name):
    run_dirs, root = runs
    out = root / f"{name}.npz"
    assert main(["export", str(run_dirs[name].directory), "--out", str(out)]) == 0
    numpy_policy, jax_policy = NumpyPolicy.load(out), wsrl.load_policy(run_dirs[name])
    obs = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    expected = jax_policy(obs)
    agent = jax_policy._agent
    unit = np.clip(np.asarray(agent.eval_actions(jnp.asarray(obs))), -0.99999, 0.99999)
    np.testing.assert_allclose(expected, 3.0 * unit, rtol=1e-5, atol=1e-6)  # InvertedPendulum's [-3, 3] units
    np.testing.assert_allclose(numpy_policy(obs), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(numpy_policy(obs[0]), jax_policy(obs[0]), rtol=1e-5, atol=1e-5)
    # Sampled actions: the same Gaussian (mean and std of the JAX actor), the same noise -> the same action.
    mean, std = (agent._actor().apply({"params": agent.actor.params}, jnp.asarray(obs)) if name == "iql"
                 else agent.policy(jnp.asarray(obs)))
    np_mean, np_std = numpy_policy.distribution(obs)
    np.testing.assert_allclose(np_mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np_std, std, rtol=1e-5, atol=1e-6)
    noise = np.random.default_rng(2).standard_normal(np_mean.shape)
    raw = np.asarray(mean) + np.asarray(std) * noise
    unit = np.clip(raw, -1, 1) if name == "iql" else np.tanh(raw)
    np.testing.assert_allclose(numpy_policy.sample(obs, noise=noise), 3.0 * unit, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_deploy_runs_with_numpy_alone(runs):
    run_dirs, root = runs
    wsrl.export(run_dirs["sac"], root / "alone.npz")
    deploy = Path(wsrl.deploy.__file__)
    code = (f"import importlib.util, sys; spec = importlib.util.spec_from_file_location('deploy', {str(deploy)!r}); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            f"p = m.NumpyPolicy.load({str(root / 'alone.npz')!r}); print(p([0.0, 0.1, 0.0, 0.0]).shape); "
            "print(sorted(k.split('.')[0] for k in sys.modules if k.split('.')[0] in "
            "('jax', 'flax', 'gymnasium', 'wsrl', 'torch', 'optax')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["(1,)", "[]"]


def test_export_bad_input(runs, tmp_path, capsys):
    run_dirs, root = runs
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "p.npz")]) == 2
    assert main(["export", str(run_dirs["sac"].directory), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is a directory" in err[1]
    assert not (tmp_path / "p.npz").exists()
