import json
import os
import shutil
import signal
import subprocess
import sys

import matplotlib.pyplot as plt
import minari
import numpy as np
import pytest

from wsrl.cli import main
from wsrl.collect.recipes import _evaluations
from wsrl.config import CollectConfig
from wsrl.data.loaders import read_dataset

TINY = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "8",
        "--eval-episodes", "1"]


@pytest.mark.slow
def test_random_and_policy_recipes_write_datasets_minari_and_wsrl_read(tmp_path, minari_root, capsys):
    assert main(["collect", "--env", "InvertedPendulum-v5", "--recipe", "random", "--steps", "300",
                 "--out", "test/ip-random-v0"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--env", "InvertedPendulum-v5", "--steps", "40", "--warmup-steps", "20", "--out", str(run),
                 *TINY]) == 0
    assert main(["collect", "--env", "InvertedPendulum-v5", "--recipe", "policy", "--from", str(run), "--steps", "300",
                 "--epsilon", "0.3", "--action-noise", "0.1", "--out", "test/ip-policy-v0"]) == 0
    for dataset_id, recipe in (("test/ip-random-v0", "random"), ("test/ip-policy-v0", "policy")):
        dataset = minari.load_dataset(dataset_id)
        assert dataset.total_steps == 300
        assert json.loads(dataset.storage.metadata["description"])["recipe"] == recipe
        episodes = list(dataset.iterate_episodes())
        # Stored in the env's units (InvertedPendulum acts in [-3, 3]); wsrl maps them back to [-1, 1].
        assert max(np.abs(e.actions).max() for e in episodes) > 1.0
        ours = read_dataset(dataset_id)
        assert max(np.abs(e.actions).max() for e in ours.episodes) <= 1.0
        np.testing.assert_allclose(ours.episodes[0].actions, episodes[0].actions / 3.0, rtol=1e-5)
        capsys.readouterr()
        assert main(["data", "info", dataset_id]) == 0
        assert "transitions              300" in capsys.readouterr().out


def test_same_seed_gives_the_same_dataset(minari_root):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert main(["collect", "--env", "Hopper-v5", "--steps", "200", "--seed", str(seed), "--out",
                     f"test/hop-{name}-v0"]) == 0
    a, b, c = (read_dataset(f"test/hop-{n}-v0").episodes for n in "abc")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.observations, y.observations)
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.rewards, y.rewards)
    assert not np.array_equal(a[0].actions, c[0].actions)


def test_a_killed_collection_leaves_no_dataset(minari_root):
    env = {**os.environ, "MINARI_DATASETS_PATH": str(minari_root)}
    proc = subprocess.Popen([sys.executable, "-m", "wsrl", "collect", "--env", "Hopper-v5", "--steps", "50000000",
                             "--out", "test/killed-v0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout.readline().startswith("collect random |")  # the progress line of its first step
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (minari_root / "test" / "killed-v0").exists()
    assert "test/killed-v0" not in minari.list_local_datasets()


@pytest.mark.parametrize("args, message", [
    (["--recipe", "expert"], "invalid choice"),
    (["--recipe", "policy"], "needs --from"),
    (["--env", "Nope-v1"], "unknown environment"),
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--out", "test/exists-v0"], "already exists"),
])
def test_collect_bad_input(minari_root, capsys, args, message):
    assert main(["collect", "--env", "Hopper-v5", "--steps", "50", "--out", "test/exists-v0"]) == 0
    before = sorted(p.name for p in minari_root.rglob("*"))
    capsys.readouterr()
    command = ["collect", "--env", "Hopper-v5", "--steps", "50", "--out", "test/new-v0", *args]
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert sorted(p.name for p in minari_root.rglob("*")) == before


@pytest.mark.slow
def test_plot_two_seeds_of_a_run_into_a_png(tmp_path):
    for seed in (0, 1):
        assert main(["train", "--env", "Hopper-v5", "--steps", "60", "--warmup-steps", "20", "--eval-every", "20",
                     "--log-every", "10", "--seed", str(seed), "--out", str(tmp_path / f"sac_seed{seed}"), *TINY]) == 0
    out = tmp_path / "fig.png"
    assert main(["plot", str(tmp_path / "sac_seed0"), str(tmp_path / "sac_seed1"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_warmups_that_differ_are_marked_per_run_and_a_shared_one_as_a_band():
    from wsrl.plots import mark_warmups

    colors = {"wsrl": "C0", "rlpd": "C1", "calql": "C2"}
    _, ax = plt.subplots()
    mark_warmups(ax, {"wsrl": 2000, "rlpd": 5000, "calql": 0}, colors)
    ends = {(line.get_xdata()[0], line.get_color()) for line in ax.get_lines() if len(line.get_xdata())}
    assert ends == {(2000, "C0"), (5000, "C1")} and not ax.patches  # no band that would cover WSRL's updates
    _, ax = plt.subplots()
    mark_warmups(ax, {"wsrl": 2000, "wsrl-random-warmup": 2000}, colors)
    assert len(ax.patches) == 1 and ax.patches[0].get_x() == 0 and ax.patches[0].get_width() == 2000
    _, ax = plt.subplots()
    mark_warmups(ax, {"calql": 0}, colors)
    assert not ax.patches and not ax.get_lines()
    plt.close("all")


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(tmp_path, minari_root, capsys, optimised_xla):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["quick"] and summary["online_steps"] == 1500
    assert summary["online_grad_steps"] == 4 * (1500 - 1024)  # from one full UTD x batch (4 x 256) on
    assert (tmp_path / "demo" / "learning_curve.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "pre-trained (CQL, random data)" in out and "fine-tuned (WSRL), final" in out
    assert "grad steps" in out and str(summary["online_grad_steps"]) in out
    assert summary["finetuned_best"] >= summary["finetuned_return"]


def test_ladder_levels_are_judged_by_rollout_returns_not_by_the_noisy_evaluations(monkeypatch):
    from wsrl.collect import recipes

    evals = [(100, 10.0), (200, 40.0), (300, 90.0), (400, 100.0), (500, 95.0), (600, 1.0)]
    rolled = {100: 5.0, 200: 12.0, 300: 30.0, 400: 60.0, 500: 80.0, 600: 99.0}
    scored = []
    monkeypatch.setattr(recipes, "_policy_return", lambda run_dir, step, env, seed: scored.append(step) or rolled[step])
    config = CollectConfig(recipe="sac-ladder")
    # Expert: the best rollout return among the 5 best-evaluated snapshots (600 evaluated worst: not a candidate).
    # Medium: the first snapshot whose evaluation and rollout return reach a third of the expert's (80 / 3):
    # 200's evaluation does, its rollouts (12) do not; 300's both do.
    medium, expert, returns = recipes._pick_levels(config, None, evals, None)
    assert (medium, expert, returns) == (300, 500, {"medium": 30.0, "expert": 80.0})
    assert sorted(scored[:5]) == [100, 200, 300, 400, 500] and scored[5:] == [200, 300]


def test_waypoint_recipe_reaches_goals_in_pointmaze(minari_root, capsys):
    assert main(["collect", "--env", "PointMaze_UMaze-v3", "--recipe", "waypoint", "--action-noise", "0.3",
                 "--steps", "1200", "--out", "test/pm-waypoint-v0"]) == 0
    raw = read_dataset("test/pm-waypoint-v0")
    assert raw.successes is not None and sum(len(e) for e in raw.episodes) == 1200
    assert any(s.any() for s in raw.successes)  # the controller gets the ball to the evaluation goal
    assert minari.load_dataset("test/pm-waypoint-v0").total_steps == 1200
    assert main(["data", "info", "test/pm-waypoint-v0"]) == 0
    assert "success rate" in capsys.readouterr().out
    assert main(["collect", "--env", "Hopper-v5", "--recipe", "waypoint", "--steps", "10", "--out", "test/x-v0"]) == 2
    assert "PointMaze envs only" in capsys.readouterr().err


def test_suite_with_out_collects_only_that_dataset(tmp_path, minari_root, capsys):
    suite = tmp_path / "two.toml"
    suite.write_text('[[dataset]]\nid = "test/a-v0"\nenv = "InvertedPendulum-v5"\nsteps = 50\n\n'
                     '[[dataset]]\nid = "test/b-v0"\nenv = "InvertedPendulum-v5"\nsteps = 60\n')
    assert main(["collect", "--suite", str(suite), "--out", "test/b-v0"]) == 0
    assert minari.load_dataset("test/b-v0").total_steps == 60
    assert not (minari_root / "test" / "a-v0").exists()
    capsys.readouterr()
    assert main(["collect", "--suite", str(suite), "--out", "test/c-v0"]) == 2
    assert "has no dataset 'test/c-v0'; its ids: test/a-v0, test/b-v0" in capsys.readouterr().err


@pytest.mark.slow
def test_sac_ladder_stops_early_writes_four_levels_continues_sac_and_a_suite_resumes(tmp_path, minari_root,
                                                                                     capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text('[[dataset]]\nid = "test/ip"\nenv = "InvertedPendulum-v5"\nrecipe = "sac-ladder"\n'
                     'steps = 400\nrollout_steps = 100\nladder_eval_every = 50\nladder_patience = 150\n\n'
                     '[[dataset]]\nid = "test/ip-random-v0"\nenv = "InvertedPendulum-v5"\nsteps = 100\n')
    assert main(["collect", "--suite", str(suite)]) == 0
    # SAC evaluates and snapshots every 50 steps. Its first update would come at step 257 (UTD x batch = 256), so
    # every evaluation before scores the same policy the same: the best is the first one (step 0, before any step),
    # and at step 150 it is 150 steps old, the patience: SAC ends there, in one run, at 150 of its 400 steps.
    sac = minari_root / ".wsrl-ladder" / "test" / "ip"
    evals = _evaluations(sac)
    assert [step for step, _ in evals] == [50, 100, 150] and len({ret for _, ret in evals}) == 1
    summary = json.loads((sac / "summary.json").read_text())
    assert summary["env_steps"] == 150 and summary["stopped_at_plateau"]["best_eval_step"] == 0
    assert "resumed" not in json.loads((sac / "config.json").read_text())
    replay = read_dataset("test/ip/medium-replay-v0")
    descriptions = {level: json.loads(minari.load_dataset(f"test/ip/{level}-v0").storage.metadata["description"])
                    for level in ("medium", "expert")}
    medium_step, expert_step = (descriptions[level]["policy_step"] for level in ("medium", "expert"))
    # Every snapshot is the same policy: scored alike, the first is both levels (the choice: the next test).
    assert medium_step == expert_step == 50
    assert descriptions["expert"]["policy_return"]["expert"] > 0
    assert sum(len(e) for e in replay.episodes) == medium_step
    levels = {level: read_dataset(f"test/ip/{level}-v0").episodes for level in ("medium", "expert", "medium-expert")}
    for level in ("medium", "expert"):
        assert sum(len(e) for e in levels[level]) == 100
    both = levels["medium"] + levels["expert"]
    assert len(levels["medium-expert"]) == len(both)
    for mixed, alone in zip(levels["medium-expert"], both, strict=True):
        np.testing.assert_array_equal(mixed.actions, alone.actions)
        np.testing.assert_array_equal(mixed.observations, alone.observations)
    for level in ("medium", "medium-replay", "expert", "medium-expert"):
        assert minari.load_dataset(f"test/ip/{level}-v0").total_steps > 0
        assert main(["data", "info", f"test/ip/{level}-v0"]) == 0
    assert read_dataset("test/ip-random-v0").episodes
    capsys.readouterr()
    assert main(["collect", "--suite", str(suite)]) == 0  # everything present: nothing is redone
    assert capsys.readouterr().out.count("already collected") == 2
    # As if killed before SAC's last evaluation (its final checkpoint and summary not written): the ladder continues
    # SAC from its newest checkpoint, ends it at the same step and writes the same datasets.
    shutil.rmtree(sac / "checkpoints" / "step_150")
    (sac / "summary.json").unlink()
    shutil.rmtree(minari_root / "test" / "ip")
    assert main(["collect", "--suite", str(suite)]) == 0
    assert _evaluations(sac) == evals
    for level in ("medium", "expert", "medium-expert"):
        for again, before in zip(read_dataset(f"test/ip/{level}-v0").episodes, levels[level], strict=True):
            np.testing.assert_array_equal(again.observations, before.observations)
    assert sum(len(e) for e in read_dataset("test/ip/medium-replay-v0").episodes) == medium_step
