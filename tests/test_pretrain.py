import csv
import dataclasses

import jax
import numpy as np
import pytest
from flax import serialization
from helpers import minari_collector_dataset

from wsrl import checkpoint
from wsrl.agents.sac import SACAgent
from wsrl.cli import main
from wsrl.config import SACConfig, from_dict
from wsrl.presets import online_preset
from wsrl.train.online import initial_agent

NETS = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "8"]
OFFLINE = [*NETS, "--eval-episodes", "1", "--log-every", "10", "--eval-every", "20", "--steps", "40"]


@pytest.fixture(scope="module")
def hopper_dataset(tmp_path_factory):
    """A few thousand Hopper-v5 steps of a random policy, written by Minari's own collector."""
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        minari_collector_dataset("test/hopper-random-v0", 2000)
    return root / "test" / "hopper-random-v0"


def rows(path):
    with open(path / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["calql", "cql", "iql"])
def test_pretrain_then_finetune_end_to_end(tmp_path, capsys, hopper_dataset, algo):
    pre, fine = tmp_path / "pre", tmp_path / "fine"
    assert main(["pretrain", "--dataset", str(hopper_dataset), "--algo", algo, "--out", str(pre), *OFFLINE]) == 0
    offline_rows = rows(pre)
    assert {r["phase"] for r in offline_rows} == {"offline"}
    assert [r["grad_step"] for r in offline_rows if r["critic_loss"]] == ["10", "20", "30", "40"]
    assert all(bool(r["cql_penalty"]) == (algo != "iql") for r in offline_rows if r["critic_loss"])
    evals = [r for r in offline_rows if r["eval_return"]]
    assert [r["grad_step"] for r in evals] == ["20", "40"]
    meta = checkpoint.load_meta(checkpoint.resolve(pre))
    assert meta["algo"] == algo and meta["agent_config"].get("calql", False) == (algo == "calql")

    method = {"calql": "wsrl", "cql": "cql", "iql": "iql"}[algo]  # cql: the baseline continuing CQL online
    learner = ["--utd", "2", *NETS] if method == "wsrl" else []  # a continued learner keeps its own settings
    assert main(["finetune", "--from", str(pre), "--method", method, "--steps", "30", "--warmup-steps", "10",
                 "--out", str(fine), "--eval-episodes", "1", *learner]) == 0
    online_evals = [r for r in rows(fine) if r["eval_return"]]
    assert online_evals[0]["eval_return"] == evals[-1]["eval_return"]  # the pre-trained policy, untouched
    if algo != "calql":  # the checkpoint's own learner (UTD 1, batch 8) from step max(K=10, 8)+1 on
        assert int(rows(fine)[-1]["grad_step"]) == 30 - 10
        assert checkpoint.load_meta(checkpoint.resolve(fine))["algo"] == algo
    else:  # the WSRL learner at UTD 2: updates from max(K=10, 2 x 8)+1 on
        assert int(rows(fine)[-1]["grad_step"]) == 2 * (30 - 16)
    capsys.readouterr()  # one x-axis per figure: gradient steps offline, env steps online
    assert main(["plot", str(pre), str(fine), "--out", str(tmp_path / "mixed.png")]) == 2
    assert "cannot plot pre-training runs (x: gradient steps) and online runs" in capsys.readouterr().err
    assert not (tmp_path / "mixed.png").exists()
    wrong = {"calql": ("cql", "holds calql"), "cql": ("iql", "holds cql"), "iql": ("wsrl", "cannot seed")}
    wrong_method, message = wrong[algo]
    capsys.readouterr()
    assert main(["finetune", "--from", str(pre), "--method", wrong_method, "--out", str(tmp_path / "bad"),
                 *(NETS if wrong_method == "wsrl" else [])]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_calql_checkpoint_restores_into_online_agent_with_moments(tmp_path, hopper_dataset):
    pre = tmp_path / "pre"
    assert main(["pretrain", "--dataset", str(hopper_dataset), "--preset", "antmaze", "--algo", "calql",
                 "--env", "Hopper-v5", "--reward-scale", "1", "--reward-bias", "0", "--out", str(pre), *OFFLINE]) == 0
    directory = checkpoint.resolve(pre)
    state = serialization.msgpack_restore((directory / "agent.msgpack").read_bytes())
    assert state["cql_lagrange"] is not None  # the antmaze preset tunes the CQL multiplier...
    recorded = checkpoint.load_meta(directory)["agent_config"]  # CQL's: SAC's fields and the penalty's
    sac_fields = {f.name for f in dataclasses.fields(SACConfig)}
    online = dataclasses.replace(online_preset("antmaze"), env="Hopper-v5",
                                 agent=from_dict(SACConfig, {k: v for k, v in recorded.items() if k in sac_fields}))
    agent = initial_agent(online, 11, 3, pre)  # ...which the online agent drops
    assert isinstance(agent, SACAgent) and not hasattr(agent, "cql_lagrange")
    restored = serialization.to_state_dict(agent)
    for net in ("actor", "critic", "temperature"):
        for a, b in zip(jax.tree.leaves(restored[net]), jax.tree.leaves(state[net]), strict=True):
            np.testing.assert_array_equal(a, b)
    assert int(agent.critic.opt_state[0].count) == 40 and np.abs(
        jax.tree.leaves(agent.critic.opt_state[0].nu)[0]).sum() > 0
    assert agent.config.policy_std == "uniform" and agent.config.critic_hidden_dims == (8, 8)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "nobody/none-v0"], "wsrl collect"),
    (["--dataset", "DATA", "--env", "HalfCheetah-v5"], "observation/action dims 11/3"),
    (["--dataset", "DATA", "--preset", "moon"], "unknown preset"),
    (["--dataset", "DATA", "--steps", "-1"], "--steps must be a positive integer"),
    (["--dataset", "DATA", "--algo", "bc"], "unknown --algo 'bc'"),
    ([], "--dataset is required"),
])
def test_pretrain_bad_input(tmp_path, capsys, hopper_dataset, args, message):
    out = tmp_path / "out"
    args = [str(hopper_dataset) if a == "DATA" else a for a in args]
    assert main(["pretrain", *OFFLINE, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()


def test_data_info_describes_a_dataset(capsys, hopper_dataset):
    assert main(["data", "info", str(hopper_dataset)]) == 0
    out = capsys.readouterr().out
    assert "Hopper-v5" in out and "transitions              2000" in out and "normalised score" in out
