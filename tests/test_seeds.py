"""`--seeds N`: N seeds in one process, each the same experiment as that seed alone, each an ordinary run directory."""

import csv
import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import serialization
from helpers import TINY

from wsrl import checkpoint
from wsrl.cli import main
from wsrl.config import OnlineConfig
from wsrl.train.online import run_online

pytestmark = pytest.mark.slow  # runs whole `wsrl` commands or processes (`pytest -m "not slow"` skips it)

TINY_FLAGS = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4",
              "--batch-size", "5", "--utd", "2", "--eval-episodes", "1", "--log-every", "5"]
WALL_CLOCK = ("wall_time", "env_steps_per_s")


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in csv.DictReader(f)]


def agent_state(run_dir):
    return serialization.msgpack_restore((checkpoint.resolve(run_dir) / checkpoint.AGENT_FILE).read_bytes())


def assert_trees_close(a, b, exact_keys=("rng",)):
    """Equal structure; rng and step counters bitwise, floating-point leaves within float rounding."""
    flat_a, flat_b = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (a, b))
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        exact = jax.default_backend() == "cpu" or any(k in jax.tree_util.keystr(path) for k in exact_keys)
        if np.issubdtype(x.dtype, np.floating) and not exact:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))
        else:
            np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def test_seed_k_of_a_batch_is_seed_k_alone_online(tmp_path):
    # 12 policy-sampled warmup steps (K = 11 >= one UTD batch of 10), then exactly one update at step 12.
    config = OnlineConfig(env="Hopper-v5", steps=12, warmup_steps=11, eval_episodes=1, log_every=4, agent=TINY)
    summary = run_online(config, tmp_path / "batch", seeds=3, save_buffer=True)
    assert summary["seeds"] == [0, 1, 2] and sorted(summary["per_seed"]) == ["0", "1", "2"]
    seed = 2  # not the first: the seed axis is indexed right
    alone = tmp_path / f"alone{seed}"
    run_online(dataclasses.replace(config, seed=seed), alone, save_buffer=True)
    member = tmp_path / "batch" / f"seed{seed}"
    # Same environment seeds and the same policy samples: every stored transition bitwise equal.
    stored, expected = np.load(member / "replay_buffer.npz"), np.load(alone / "replay_buffer.npz")
    assert stored.files == expected.files
    for name in expected.files:
        np.testing.assert_array_equal(stored[name], expected[name], err_msg=name)
    warmup = [r for r in rows(alone) if r["phase"] == "warmup"]
    assert warmup and rows(member)[:len(warmup)] == warmup
    # The one update: equal up to float rounding (see assert_trees_close), rng and step counts exactly.
    assert_trees_close(agent_state(member), agent_state(alone))
    assert json.loads((member / "config.json").read_text())["config"]["seed"] == seed
    assert json.loads((tmp_path / "batch" / "seed1" / "summary.json").read_text()) == summary["per_seed"]["1"]


PRETRAIN = ["pretrain", "--dataset", "test/hop-v0", "--algo", "calql", "--steps", "4", "--actor-hidden-dims", "8",
            "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "5", "--eval-episodes", "1",
            "--eval-every", "4", "--log-every", "1"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A two-seed pre-training (seeds 3 and 4) of a tiny Cal-QL on a small random dataset, and seed 4 alone."""
    root = tmp_path_factory.mktemp("seeds")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
        assert main(["collect", "--env", "Hopper-v5", "--steps", "100", "--seed", "5", "--out", "test/hop-v0"]) == 0
        assert main([*PRETRAIN, "--seed", "3", "--seeds", "2", "--out", str(root / "pre")]) == 0
        assert main([*PRETRAIN, "--seed", "4", "--out", str(root / "alone")]) == 0
    return root / "pre"


def test_seed_k_of_a_batch_is_seed_k_alone_offline(pretrained):
    member, alone = pretrained / "seed4", pretrained.parent / "alone"
    assert_trees_close(agent_state(member), agent_state(alone))
    got, want = rows(member), rows(alone)
    assert [r["grad_step"] for r in got] == [r["grad_step"] for r in want] == ["1", "2", "3", "4", "4"]
    if jax.default_backend() == "cpu":  # seeds update one after the other: the same numbers
        assert got == want
    for a, b in zip(got, want, strict=True):
        for key, value in b.items():
            if value and key != "phase":
                assert float(a[key]) == pytest.approx(float(value), rel=1e-4, abs=1e-5), key


def test_finetune_hands_each_pretrained_seed_to_its_seed_and_seed_dirs_stand_alone(tmp_path, pretrained, capsys):
    out = tmp_path / "fine"
    assert main(["finetune", "--from", str(pretrained), "--seed", "3", "--seeds", "2", "--steps", "15",
                 "--warmup-steps", "11", "--out", str(out), *TINY_FLAGS]) == 0
    assert "2 seeds x 15 env steps" in capsys.readouterr().out
    for seed in (3, 4):
        member = out / f"seed{seed}"
        record = json.loads((member / "config.json").read_text())
        assert record["init_from"] == str(pretrained / f"seed{seed}") and record["config"]["seed"] == seed
        # The warmup's first evaluation is that of seed's own pre-trained policy.
        pre_eval = [r for r in rows(pretrained / f"seed{seed}") if r["eval_return"]][-1]
        assert [r for r in rows(member) if r["eval_return"]][0]["eval_return"] == pre_eval["eval_return"]
    assert json.loads((out / "config.json").read_text())["seeds"] == [3, 4]

    # Each seed's directory is an ordinary run: eval, plot and resume (extend) take it alone.
    member = out / "seed4"
    assert main(["eval", "--from", str(member), "--eval-episodes", "1"]) == 0
    assert main(["plot", str(out / "seed3"), str(member), "--out", str(tmp_path / "curves.png")]) == 0
    assert main(["resume", str(member), "--steps", "18"]) == 0
    assert json.loads((member / "summary.json").read_text())["env_steps"] == 18


@pytest.mark.parametrize("args, message", [
    (["train", "--seeds", "0"], "--seeds must be a positive integer"),
    (["train", "--seeds", "2", "--seed", "-1"], "--seed must be >= 0"),
    (["finetune", "--from", "PRE", "--seed", "3", "--seeds", "3"], "holds the pre-training of seeds 3..4"),
    (["finetune", "--from", "PRE", "--seeds", "2"], "holds the pre-training of seeds 3..4"),
    (["eval", "--from", "PRE"], "holds a run of 2 seeds; give one seed's run directory"),
])
def test_seeds_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, pretrained, args, message):
    out = tmp_path / "out"
    args = [str(pretrained) if a == "PRE" else a for a in args]
    if args[0] != "eval":
        args += [*TINY_FLAGS, "--steps", "12", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("wsrl: error:")
    assert not out.exists()
