import dataclasses
import json
import os

import h5py
import numpy as np
import pytest
from helpers import minari_collector_dataset

from wsrl.config import OfflineConfig
from wsrl.data.loaders import read_d4rl, read_dataset
from wsrl.data.transitions import Episode, from_episodes, return_to_go
from wsrl.envs import GOAL_KEYS, RewardTransform, make_env
from wsrl.errors import UserError
from wsrl.train.offline import dataset_transitions


def write_minari(root, dataset_id, episodes, env_id="Hopper-v5", successes=None, dict_obs=False):
    """A dataset in Minari's on-disk layout: one group per episode, observations of length T+1."""
    directory = root / dataset_id / "data"
    directory.mkdir(parents=True)
    with h5py.File(directory / "main_data.hdf5", "w") as f:
        for i, ep in enumerate(episodes):
            g = f.create_group(f"episode_{i}")
            if dict_obs:
                obs = g.create_group("observations")
                for j, key in enumerate(GOAL_KEYS):
                    obs[key] = ep.observations[:, j:j + 1]
            else:
                g["observations"] = ep.observations
            g["actions"], g["rewards"] = ep.actions, ep.rewards
            g["terminations"], g["truncations"] = ep.terminations, ep.truncations
            infos = g.create_group("infos")
            if successes is not None:
                infos["success"] = successes[i]
    (directory / "metadata.json").write_text(json.dumps(
        {"env_spec": json.dumps({"id": env_id}), "total_episodes": len(episodes)}))
    return root / dataset_id


def distinctive_episode(index: int, length: int, terminal: bool, obs_dim: int = 3) -> Episode:
    """obs[t] = 1000 * index + t in every dim, action = obs + 0.5, reward = obs + 0.25."""
    t = 1000.0 * index + np.arange(length + 1, dtype=np.float32)
    terminations = np.zeros(length, bool)
    terminations[-1] = terminal
    truncations = ~terminations & (np.arange(length) == length - 1)
    return Episode(observations=np.repeat(t[:, None], obs_dim, 1), actions=np.repeat(t[:-1, None] + 0.5, 2, 1),
                   rewards=t[:-1] + 0.25, terminations=terminations, truncations=truncations)


def test_minari_transitions_are_aligned_within_episodes(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    shapes = [(5, True), (3, False), (4, True)]
    episodes = [distinctive_episode(i, n, terminal) for i, (n, terminal) in enumerate(shapes)]
    write_minari(tmp_path, "toy/aligned-v0", episodes)
    raw = read_dataset("toy/aligned-v0")
    assert raw.env_id == "Hopper-v5" and len(raw.episodes) == 3
    tr = from_episodes(raw.episodes, action_limit=None)
    assert len(tr) == 12
    s, s2 = tr.observations[:, 0], tr.next_observations[:, 0]
    np.testing.assert_array_equal(s2, s + 1)  # every s' is the same episode's next step, never the next episode's
    np.testing.assert_array_equal(tr.actions[:, 0], s + 0.5)
    np.testing.assert_array_equal(tr.rewards, s + 0.25)
    np.testing.assert_array_equal(np.floor(s / 1000), [0] * 5 + [1] * 3 + [2] * 4)
    np.testing.assert_array_equal(tr.masks, [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0])  # truncation is not terminal
    np.testing.assert_array_equal(tr.dones, [0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1])


def test_minari_goal_dict_observations_flatten_in_fixed_order(tmp_path):
    ep = distinctive_episode(0, 4, True)
    ep = Episode(ep.observations * np.array([1.0, 10.0, 100.0]), ep.actions, ep.rewards, ep.terminations,
                 ep.truncations)
    raw = read_dataset(str(write_minari(tmp_path, "toy/goal-v0", [ep], dict_obs=True)))
    np.testing.assert_array_equal(raw.episodes[0].observations, ep.observations)  # observation, achieved, desired


def test_real_minari_dataset_matches_minari_own_reader(tmp_path, monkeypatch):
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    minari_collector_dataset("test/hopper-tiny-v0", 150)
    ours = read_dataset("test/hopper-tiny-v0")
    theirs = list(minari.load_dataset("test/hopper-tiny-v0").iterate_episodes())
    assert len(ours.episodes) == len(theirs) > 1
    for a, b in zip(ours.episodes, theirs, strict=True):
        np.testing.assert_allclose(a.observations, b.observations, rtol=1e-6)
        np.testing.assert_allclose(a.actions, b.actions)
        np.testing.assert_allclose(a.rewards, b.rewards, rtol=1e-6)
        np.testing.assert_array_equal(a.terminations, b.terminations)


def test_d4rl_boundaries_from_terminals_timeouts_and_jumps(tmp_path):
    obs = np.arange(10, dtype=np.float32)[:, None]
    rewards = np.ones(10, np.float32)
    terminals = np.zeros(10, bool)
    timeouts = np.zeros(10, bool)
    terminals[2], timeouts[5] = True, True  # episodes [0..2] terminal, [3..5] time limit, [6..9] file end
    path = tmp_path / "d4rl.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = obs, np.zeros((10, 1)), rewards
        f["terminals"], f["timeouts"] = terminals, timeouts
    eps = read_d4rl(path).episodes
    # Without next_observations the time-limit-cut episode and the last one lose their final transition.
    assert [len(e) for e in eps] == [3, 2, 3]
    np.testing.assert_array_equal(eps[1].observations[:, 0], [3, 4, 5])
    tr = from_episodes(eps, gamma=0.5)
    np.testing.assert_array_equal(tr.masks, [1, 1, 0, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(tr.mc_returns, [1.75, 1.5, 1.0, 1.5, 1.0, 1.75, 1.5, 1.0])

    # With next_observations: a jump in observations also splits, and no transition is dropped.
    next_obs = obs + 1
    next_obs[7] = 42.0  # obs[8] != next_obs[7]: a boundary without any flag
    path2 = tmp_path / "d4rl_next.hdf5"
    with h5py.File(path2, "w") as f:
        f["observations"], f["actions"], f["rewards"] = obs, np.zeros((10, 1)), rewards
        f["terminals"], f["timeouts"], f["next_observations"] = terminals, timeouts, next_obs
    eps = read_d4rl(path2).episodes
    assert [len(e) for e in eps] == [3, 3, 2, 2]
    np.testing.assert_array_equal(eps[2].observations[:, 0], [6, 7, 42])


def test_return_to_go_discounts_within_episode_and_values_sparse_failures():
    np.testing.assert_allclose(return_to_go(np.array([1.0, 0.0, 2.0]), 0.9), [1 + 0.81 * 2, 0.9 * 2, 2.0], rtol=1e-6)
    np.testing.assert_allclose(return_to_go(np.full(4, -5.0), 0.99, sparse_failure_reward=-5.0), np.full(4, -500.0))
    success = np.array([-5.0, -5.0, 5.0])
    np.testing.assert_allclose(return_to_go(success, 0.99, sparse_failure_reward=-5.0),
                               [-5 - 0.99 * 5 + 0.99**2 * 5, -5 + 0.99 * 5, 5.0], rtol=1e-6)


def test_reward_transform_applied_once_on_dataset_and_once_on_training_env(tmp_path):
    ep = distinctive_episode(0, 3, True)
    config = OfflineConfig(dataset="x", reward_scale=10.0, reward_bias=-5.0, sparse_failure_reward=None)
    raw = read_dataset(str(write_minari(tmp_path, "toy/reward-v0", [ep])))
    tr = dataset_transitions(config, raw)
    np.testing.assert_allclose(tr.rewards, 10.0 * ep.rewards - 5.0)
    np.testing.assert_allclose(tr.mc_returns, return_to_go(10.0 * ep.rewards - 5.0, 0.99), rtol=1e-6)

    train_env, eval_env = make_env("Hopper-v5", 10.0, -5.0), make_env("Hopper-v5")
    wrappers, env = [], train_env
    while hasattr(env, "env"):
        wrappers.append(type(env))
        env = env.env
    assert wrappers.count(RewardTransform) == 1
    action = np.zeros(3, np.float32)
    train_env.reset(seed=0)
    eval_env.reset(seed=0)
    _, r_train, *_, info = train_env.step(action)
    _, r_eval, *_ = eval_env.step(action)
    assert r_train == pytest.approx(10.0 * r_eval - 5.0) and info["raw_reward"] == pytest.approx(r_eval)


def test_binary_rewards_come_from_success_flags(tmp_path):
    ep = distinctive_episode(0, 4, True)
    raw = read_dataset(str(write_minari(tmp_path, "toy/binary-v0", [ep],
                                        successes=[np.array([False, False, True, True])])))
    config = OfflineConfig(dataset="x", reward_scale=10.0, reward_bias=5.0, binary_reward=True,
                           sparse_failure_reward=-1.0)
    np.testing.assert_allclose(dataset_transitions(config, raw).rewards, [-5.0, -5.0, 5.0, 5.0])


def test_episodes_end_at_success_when_the_task_terminates_there(tmp_path):
    """With terminate_on_success an episode is cut after each success step, which becomes a true terminal, and
    return-to-go restarts after it; without it the dataset's own boundaries stay."""
    ep = distinctive_episode(0, 7, False)
    success = np.array([False, False, True, False, False, True, False])
    ep = Episode(ep.observations, ep.actions, success.astype(np.float32), ep.terminations, ep.truncations)
    raw = read_dataset(str(write_minari(tmp_path, "toy/goal-v0", [ep], successes=[np.r_[False, success]])))
    config = OfflineConfig(dataset="x", reward_scale=10.0, reward_bias=-5.0, sparse_failure_reward=0.0)
    kept = dataset_transitions(config, raw)
    np.testing.assert_array_equal(kept.masks, np.ones(7))
    np.testing.assert_array_equal(kept.dones, [0, 0, 0, 0, 0, 0, 1])
    tr = dataset_transitions(dataclasses.replace(config, terminate_on_success=True), raw)
    np.testing.assert_array_equal(tr.next_observations[:, 0], tr.observations[:, 0] + 1)  # still aligned
    np.testing.assert_array_equal(tr.rewards, [-5, -5, 5, -5, -5, 5, -5])
    np.testing.assert_array_equal(tr.masks, [1, 1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(tr.dones, [0, 0, 1, 0, 0, 1, 1])
    first = [-5 + 0.99 * (-5 + 0.99 * 5), -5 + 0.99 * 5, 5]
    # the last piece never succeeds: the failure reward forever, -5 / (1 - 0.99)
    np.testing.assert_allclose(tr.mc_returns, [*first, *first, -500.0], rtol=1e-5)


def test_bad_datasets_raise_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(UserError, match="not found.*wsrl collect"):
        read_dataset("nobody/nothing-v0")
    bad = tmp_path / "broken.hdf5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(UserError, match="corrupt or truncated"):
        read_dataset(str(bad))
    ep = distinctive_episode(0, 3, True)
    nan = Episode(ep.observations.copy(), ep.actions, ep.rewards, ep.terminations, ep.truncations)
    nan.observations[1, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        from_episodes([nan])
    with pytest.raises(UserError, match="no transitions"):
        from_episodes([])


def test_download_without_a_network_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from wsrl.cli import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))

    def unreachable(address, timeout=None):
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr("socket.create_connection", unreachable)
    assert main(["data", "download", "D4RL/antmaze/large-diverse-v1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsrl: error: cannot download D4RL/antmaze/large-diverse-v1: no network reaches Minari's "
                          "remote hf://farama-minari (Name or service not known); put the dataset's files under ")
    assert "`wsrl collect`" in err and len(err.strip().splitlines()) == 1
    assert main(["pretrain", "--dataset", "D4RL/antmaze/large-diverse-v1", "--download", "--out",
                 str(tmp_path / "run")]) == 2
    assert "cannot download" in capsys.readouterr().err
    assert not (tmp_path / "minari").exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_download_fetches_with_minaris_api_once_then_pretrain_reads_it(tmp_path, monkeypatch):
    import minari

    from wsrl.cli import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setattr("socket.create_connection", lambda address, timeout=None: open(os.devnull))  # noqa: SIM115
    fetched = []

    def download_dataset(dataset_id, force_download=False):  # Minari's remote, here made by its own collector
        fetched.append(dataset_id)
        minari_collector_dataset(dataset_id, 200)

    monkeypatch.setattr(minari, "download_dataset", download_dataset)
    assert main(["data", "download", "remote/hopper/random-v0"]) == 0
    assert main(["pretrain", "--dataset", "remote/hopper/random-v0", "--download", "--steps", "2", "--eval-every",
                 "2", "--eval-episodes", "1", "--critic-hidden-dims", "8", "8", "--actor-hidden-dims", "8",
                 "--num-critics", "2", "--batch-size", "4", "--out", str(tmp_path / "run")]) == 0
    assert fetched == ["remote/hopper/random-v0"]  # the second found it in the Minari root
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["grad_steps"] == 2
