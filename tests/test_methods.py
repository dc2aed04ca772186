import csv
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsrl.cli import main
from wsrl.config import ContinuedConfig, JSRLConfig, OnlineConfig, RetentionConfig, SACConfig
from wsrl.data.buffer import ReplayBuffer, mixed_batch
from wsrl.data.loaders import read_dataset
from wsrl.presets import online_preset
from wsrl.presets.methods import METHODS

RUN = ["--eval-episodes", "1", "--log-every", "10"]
NETS = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "8", *RUN]


def test_methods_resolve_to_the_documented_settings():
    base = online_preset("locomotion")
    wsrl = METHODS["wsrl"].apply(base)
    assert wsrl == base and wsrl.retention is None and wsrl.jsrl is None and wsrl.warmup_steps == 5000
    assert isinstance(wsrl.agent, SACConfig)
    assert METHODS["wsrl-no-warmup"].apply(base).warmup_steps == 0
    assert METHODS["wsrl-random-warmup"].apply(base).warmup_policy == "random"
    assert METHODS["wsrl-retain"].apply(base).retention == RetentionConfig("mix", 0.5)
    assert METHODS["sac-fast"].apply(base) == base and not METHODS["sac-fast"].from_checkpoint
    for name in ("calql", "cql", "iql"):  # the offline algorithm continued online: own loss, no warmup, no data
        continued = METHODS[name].apply(base)
        assert (continued.agent, continued.warmup_steps, continued.retention) == (ContinuedConfig(name, 0), 0, None)
        retaining = METHODS[f"{name}-retain"].apply(base)
        assert (retaining.agent, retaining.retention) == (ContinuedConfig(name, 0), RetentionConfig("mix", 0.5))
    ensemble = METHODS["calql-ensemble-utd"].apply(base)
    assert (ensemble.agent, ensemble.retention) == (ContinuedConfig("calql", 4), RetentionConfig("mix", 0.5))
    jsrl = METHODS["jsrl"].apply(base)
    assert (jsrl.jsrl, jsrl.warmup_steps, jsrl.agent) == (JSRLConfig(10, 0, 0.05), 0, base.agent)
    rlpd = METHODS["rlpd"].apply(base)  # docs/method.md §5
    a = rlpd.agent
    assert (a.num_critics, a.critic_subset, a.subset_with_replacement) == (10, 2, False)
    assert (a.actor_critic_reduction, a.actor_layer_norm, a.critic_layer_norm) == ("mean", False, True)
    assert (a.entropy_backup, a.target_entropy_per_dim) == (True, -0.5)
    assert (a.actor_lr, a.critic_lr, a.temperature_lr, a.utd, a.batch_size) == (3e-4, 3e-4, 3e-4, 20, 256)
    assert (rlpd.warmup_steps, rlpd.warmup_policy, rlpd.retention) == (5000, "random", RetentionConfig("mix", 0.5))
    assert not METHODS["rlpd"].from_checkpoint
    assert not METHODS["rlpd"].apply(online_preset("antmaze")).agent.max_target_backup  # WSRL's AntMaze backup


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 1.0])
def test_every_minibatch_holds_exactly_the_requested_offline_fraction(ratio):
    online = {"observations": np.ones((20, 2)), "actions": np.zeros((20, 1)), "rewards": np.ones(20),
              "next_observations": np.ones((20, 2)), "masks": np.ones(20)}
    buffer = ReplayBuffer.create(2, 1, capacity=50).extend(online)
    assert int(buffer.size) == 20
    offline = {"observations": -jnp.ones((30, 2)), "actions": jnp.zeros((30, 1)), "rewards": -jnp.ones(30),
               "next_observations": -jnp.ones((30, 2)), "masks": jnp.ones(30), "mc_returns": jnp.zeros(30)}
    batch = mixed_batch(jax.random.PRNGKey(0), buffer, offline, minibatches=3, batch_size=8, offline_ratio=ratio)
    is_offline = np.asarray(batch["observations"][:, 0] < 0).reshape(3, 8)
    np.testing.assert_array_equal(is_offline.sum(axis=1), [round(8 * ratio)] * 3)
    np.testing.assert_array_equal(np.asarray(batch["offline"]).reshape(3, 8), is_offline)
    np.testing.assert_array_equal(np.asarray(batch["rewards"]).reshape(3, 8) < 0, is_offline)


@pytest.fixture
def hopper_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert main(["collect", "--env", "Hopper-v5", "--steps", "200", "--seed", "5", "--out", "test/hop-v0"]) == 0
    return np.concatenate([e.observations[:-1] for e in read_dataset("test/hop-v0").episodes])


def buffer_rows(run_dir):
    return np.load(run_dir / "replay_buffer.npz")["observations"]


def contains(rows, row):
    return bool(np.any(np.all(np.isclose(rows, row, atol=1e-6), axis=1)))


@pytest.mark.slow
@pytest.mark.parametrize("retention", ["none", "mix", "append"])
def test_only_append_puts_offline_data_in_the_buffer(tmp_path, hopper_data, retention):
    from wsrl.train.online import run_online

    agent = SACConfig(actor_hidden_dims=(8,), critic_hidden_dims=(8,), num_critics=4, batch_size=8, utd=2)
    retained = None if retention == "none" else RetentionConfig(retention, 0.25, "test/hop-v0")
    config = OnlineConfig(env="Hopper-v5", steps=60, warmup_steps=20, eval_episodes=1, log_every=10, agent=agent,
                          retention=retained)
    run_online(config, tmp_path / "run", save_buffer=True)
    rows = buffer_rows(tmp_path / "run")
    offline_in_buffer = sum(contains(rows, r) for r in hopper_data)
    assert offline_in_buffer == (len(hopper_data) if retention == "append" else 0)
    assert len(rows) == 60 + (len(hopper_data) if retention == "append" else 0)
    with open(tmp_path / "run" / "metrics.csv") as f:
        fractions = {r["offline_fraction"] for r in csv.DictReader(f) if r["offline_fraction"]}
    assert fractions == ({"0.25"} if retention == "mix" else {"0.0"})


@pytest.mark.slow
def test_rlpd_trains_from_scratch_with_half_offline_batches(tmp_path, hopper_data):
    out = tmp_path / "rlpd"
    assert main(["train", "--method", "rlpd", "--dataset", "test/hop-v0", "--steps", "40", "--warmup-steps", "20",
                 "--utd", "2", "--out", str(out), *NETS]) == 0
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["offline_fraction"]]
    assert rows and {r["offline_fraction"] for r in rows} == {"0.5"}


@pytest.mark.parametrize("args, message", [
    (["train", "--method", "rlpd"], "--retain mix keeps offline data: give it with --dataset"),
    (["train", "--method", "rlpd", "--dataset", "test/hop-v0", "--offline-ratio", "1.5"], "--offline-ratio must be"),
    (["train", "--method", "wsrl"], "fine-tunes a pre-trained checkpoint"),
    (["finetune", "--from", "x", "--method", "sac-fast"], "starts from scratch"),
    (["train", "--method", "cql-magic"], "choose one of wsrl, wsrl-no-warmup"),
])
def test_method_bad_input(tmp_path, capsys, hopper_data, args, message):
    assert main([*args, "--out", str(tmp_path / "out"), *NETS]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_jsrl_guide_acts_for_the_first_h_steps_then_the_learner(tmp_path):
    from wsrl import checkpoint
    from wsrl.agents import agent_from_meta
    from wsrl.data.loaders import episodes_from_flat
    from wsrl.evaluation import eval_action

    guide_run = tmp_path / "guide"
    assert main(["train", "--env", "Hopper-v5", "--steps", "40", "--warmup-steps", "10", "--out", str(guide_run),
                 "--seed", "7", *NETS]) == 0
    directory = checkpoint.resolve(guide_run)
    guide = checkpoint.restore(agent_from_meta(checkpoint.load_meta(directory)), directory)

    from wsrl.train.online import run_online

    agent = SACConfig(actor_hidden_dims=(8,), critic_hidden_dims=(8, 8), num_critics=4, batch_size=8)
    config = METHODS["jsrl"].apply(OnlineConfig(env="Hopper-v5", steps=120, eval_episodes=1, eval_every=1000,
                                                agent=agent))
    assert config.jsrl.jsrl_stages == 10 and config.warmup_steps == 0
    config = dataclasses.replace(config, jsrl=dataclasses.replace(config.jsrl, jsrl_initial_horizon=5))
    run_online(config, tmp_path / "jsrl", init_from=guide_run, save_buffer=True)
    flat = dict(np.load(tmp_path / "jsrl" / "replay_buffer.npz"))
    flat["terminals"] = flat.pop("masks") == 0
    episodes = episodes_from_flat(flat)
    assert len(episodes) >= 3
    for episode in episodes[:-1]:
        guided = [np.allclose(a, eval_action(guide, o), atol=1e-5)
                  for o, a in zip(episode.observations[:-1], episode.actions, strict=False)]
        assert all(guided[:5]) and not any(guided[5:])
    with open(tmp_path / "jsrl" / "metrics.csv") as f:
        assert [r["jsrl_horizon"] for r in csv.DictReader(f) if r["eval_return"]][0] == "5"


@pytest.mark.slow
def test_calql_online_fills_returns_of_finished_episodes_and_samples_only_those(tmp_path, hopper_data):
    from wsrl.data.loaders import episodes_from_flat
    from wsrl.data.transitions import return_to_go

    pre = tmp_path / "pre"
    assert main(["pretrain", "--dataset", "test/hop-v0", "--algo", "calql", "--steps", "5", "--out", str(pre),
                 "--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size",
                 "8", "--eval-episodes", "1"]) == 0
    for method, utd in (("calql", 1), ("calql-ensemble-utd", 4)):
        out = tmp_path / method
        extra = ["--dataset", "test/hop-v0"] if method != "calql" else []
        assert main(["finetune", "--from", str(pre), "--method", method, "--steps", "1030", "--warmup-steps", "10",
                     "--out", str(out), *extra, *RUN]) == 0  # the checkpoint's own learner: no SAC flags
        with open(out / "metrics.csv") as f:
            last = list(csv.DictReader(f))[-2]  # the last training row
        # Updates wait for max(K, one batch, one full episode of Hopper's 1000-step limit).
        assert int(last["grad_step"]) == utd * (1030 - 1000)
    config_run = tmp_path / "calql"
    from wsrl.train.online import run_online

    online = dataclasses.replace(METHODS["calql"].apply(OnlineConfig(env="Hopper-v5", steps=120, eval_episodes=1)),
                                 warmup_steps=10)
    run_online(online, config_run, init_from=pre, save_buffer=True, overwrite=True, require_update=False)
    flat = dict(np.load(config_run / "replay_buffer.npz"))
    mc = flat.pop("mc_returns")
    flat["terminals"] = flat.pop("masks") == 0
    start = 0
    episodes = episodes_from_flat(flat)
    for episode in episodes[:-1]:  # every finished episode carries its return-to-go
        n = len(episode)
        np.testing.assert_allclose(mc[start:start + n], return_to_go(episode.rewards, 0.99), rtol=1e-5, atol=1e-5)
        start += n
    assert np.all(mc[start:] == 0)  # the unfinished one does not (and is never sampled)


def test_sampling_is_limited_to_finished_rows():
    buffer = ReplayBuffer.create(1, 1, capacity=10)
    buffer = buffer.extend({"observations": np.arange(10.0)[:, None], "actions": np.zeros((10, 1)),
                            "rewards": np.zeros(10), "next_observations": np.zeros((10, 1)), "masks": np.ones(10)})
    rows = np.asarray(buffer.sample(jax.random.PRNGKey(0), 500, limit=jnp.asarray(4))["observations"][:, 0])
    assert set(rows.astype(int)) == {0, 1, 2, 3}


def test_online_returns_carry_their_state_through_loop_json_and_refuse_a_damaged_one():
    from wsrl.errors import UserError
    from wsrl.train.sources import OnlineReturns

    returns = OnlineReturns(gamma=0.5, failure_reward=None, episode_limit=4, finished=10)
    for reward in (1.0, 2.0):
        returns.after_step(reward)
    idx, values = returns.end_episode(capacity=99)
    assert idx.tolist() == [10, 11, 99, 99] and values[:2].tolist() == [2.0, 2.0]  # 1 + 0.5 * 2, then 2
    returns.after_step(3.0)
    again = OnlineReturns(gamma=0.5, failure_reward=None, episode_limit=4, finished=0)
    again.restore(returns.record())
    assert (again.finished, again.rewards) == (12, [3.0])
    for damaged in ({"finished": "12", "rewards": []}, {"finished": 12}, {}):
        with pytest.raises(UserError, match="loop.json's returns are damaged"):
            again.restore({"returns": damaged})
