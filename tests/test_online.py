import csv
import dataclasses
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import TINY

from wsrl import checkpoint, runlog
from wsrl.agents.sac import SACAgent
from wsrl.cli import main
from wsrl.config import OnlineConfig
from wsrl.envs import make_env
from wsrl.train.online import CAPACITY_ROWS, buffer_capacity, run_online

TINY_FLAGS = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4",
              "--batch-size", "5", "--utd", "2", "--eval-episodes", "2", "--log-every", "10"]
HOPPER_OBS, HOPPER_ACT = 11, 3


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def tiny_online(**changes) -> OnlineConfig:
    return dataclasses.replace(OnlineConfig(env="Hopper-v5", eval_episodes=1, log_every=10, agent=TINY), **changes)


@pytest.mark.slow
@pytest.mark.parametrize("warmup_policy", ["pretrained", "random"])
def test_warmup_performs_zero_gradient_steps(tmp_path, warmup_policy):
    config = tiny_online(steps=50, warmup_steps=40, warmup_policy=warmup_policy, checkpoint_every=40)
    summary = run_online(config, tmp_path / "run")
    assert summary["grad_steps"] == TINY.utd * (50 - 40)  # every gradient step comes after the warmup
    saved = checkpoint.restore(SACAgent.create(TINY, HOPPER_OBS, HOPPER_ACT, seed=99),
                               tmp_path / "run" / "checkpoints" / "step_40")
    initial = SACAgent.create(TINY, HOPPER_OBS, HOPPER_ACT, seed=0)
    for net in ("actor", "critic", "temperature"):
        assert int(getattr(saved, net).step) == 0
        for a, b in zip(jax.tree.leaves(getattr(saved, net).params), jax.tree.leaves(getattr(initial, net).params),
                        strict=True):
            np.testing.assert_array_equal(a, b)
    warmup = [r for r in rows(tmp_path / "run") if int(r["env_step"]) <= 40]
    assert [r["env_step"] for r in warmup] == ["0", "10", "20", "30", "40"]  # the first evaluation, then logs
    assert {r["grad_step"] for r in warmup} == {"0"} and {r["phase"] for r in warmup} == {"warmup"}


def test_updates_start_after_warmup_and_one_full_batch(tmp_path):
    # K = 3 is below one full UTD batch (2 x 5 = 10 transitions): the first update is at step 11.
    summary = run_online(tiny_online(steps=20, warmup_steps=3), tmp_path / "run")
    assert summary["grad_steps"] == TINY.utd * (20 - 10)


def test_patience_keeps_the_first_best_score_and_waits_for_an_evaluation_step():
    from wsrl.train.online import LoopState, _plateaued

    config, state = tiny_online(eval_every=100, patience=200), LoopState(np.zeros(1), np.zeros(1), None, 0)
    history = []
    for step, score in [(100, 1.0), (200, 5.0), (300, 4.0), (400, 5.0), (450, None), (500, 6.0), (700, 6.0)]:
        state.env_step = step
        if score is not None:
            state.scored(score)
        history.append(_plateaued(config, [state]))
    # 400: the best (5.0, tied at 400) is from 200; 450 is no evaluation step; 500 improves; 700 is 200 on.
    assert history == [False, False, False, True, False, False, True]
    assert not _plateaued(dataclasses.replace(config, patience=0), [state])


def test_a_run_ends_once_its_best_evaluation_is_patience_steps_old_and_resuming_it_ends_there_again(tmp_path):
    from wsrl.train.resume import resume

    # No update before step 41: evaluations at 0, 10, 20 score the same policy alike, so the best stays at step 0.
    config = tiny_online(steps=60, warmup_steps=40, eval_every=10, patience=20, checkpoint_every=10)
    summary = run_online(config, tmp_path / "run")
    assert summary["env_steps"] == 20 and summary["grad_steps"] == 0
    assert summary["stopped_at_plateau"]["best_eval_step"] == 0
    assert [r["env_step"] for r in rows(tmp_path / "run") if r["eval_return"]] == ["0", "10", "20"]
    assert resume(tmp_path / "run", steps=100)["env_steps"] == 20  # still plateaued: nothing more to do
    assert len([r for r in rows(tmp_path / "run") if r["eval_return"]]) == 3


@pytest.mark.slow
def test_same_seed_same_run(tmp_path):
    config = tiny_online(steps=30, warmup_steps=10)
    run_online(config, tmp_path / "a")
    run_online(config, tmp_path / "b")
    drop = ("wall_time", "env_steps_per_s")
    strip = [[{k: v for k, v in r.items() if k not in drop} for r in rows(tmp_path / d)] for d in "ab"]
    assert strip[0] == strip[1]


@pytest.mark.slow
def test_finetune_without_env_acts_in_the_checkpoints_environment(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    assert main(["train", "--env", "InvertedPendulum-v5", "--steps", "40", "--warmup-steps", "30", "--out", str(a),
                 *TINY_FLAGS]) == 0
    assert main(["finetune", "--from", str(a), "--steps", "20", "--warmup-steps", "10", "--out", str(b),
                 *TINY_FLAGS]) == 0
    assert json.loads((b / "config.json").read_text())["config"]["env"] == "InvertedPendulum-v5"


def test_progress_prints_plain_lines_where_the_output_is_not_a_terminal(capsys, monkeypatch):
    """In a log file rich draws nothing until the end: the bar prints a line every minute instead, with the rate of
    the steps done in this process (a resumed loop starts past 0)."""
    now = iter([0.0, 1.0, 30.0, 61.0, 90.0, 130.0])
    monkeypatch.setattr(runlog.time, "perf_counter", lambda: next(now))
    with runlog.ProgressBar(1000, "online", line_every_s=60) as bar:
        for step in (100, 200, 300, 400, 1000):
            bar.advance(step, [12.5])
    lines = [line for line in capsys.readouterr().out.splitlines() if " elapsed" in line]
    assert lines == ["online | eval return 12.5 | 100/1000 steps, 0 steps/s, 0:00:01 elapsed",
                     "online | eval return 12.5 | 300/1000 steps, 3 steps/s, 0:01:01 elapsed, 0:03:33 left",
                     "online | eval return 12.5 | 1000/1000 steps, 7 steps/s, 0:02:10 elapsed, 0:00:00 left"]


@pytest.mark.slow
def test_cli_train_then_finetune_keeps_the_policy_through_warmup(tmp_path, capsys):
    a, b = tmp_path / "A", tmp_path / "B"
    assert main(["train", "--env", "Hopper-v5", "--steps", "120", "--warmup-steps", "30", "--out", str(a),
                 *TINY_FLAGS]) == 0
    assert main(["finetune", "--from", str(a), "--env", "Hopper-v5", "--steps", "100", "--warmup-steps", "40",
                 "--out", str(b), *TINY_FLAGS]) == 0
    for name in ("config.json", "metrics.csv", "summary.json"):
        assert (b / name).is_file()
    assert list((b / "tensorboard").iterdir()) and checkpoint.resolve(b).name == "step_100"
    assert json.loads((b / "config.json").read_text())["config"]["warmup_steps"] == 40

    train_rows = [r for r in rows(b) if r["critic_loss"]]
    assert train_rows and all(r["grad_step"] == "0" and r["phase"] == "warmup"
                              for r in train_rows if int(r["env_step"]) <= 40)
    for r in train_rows:
        if int(r["env_step"]) > 40:
            assert int(r["grad_step"]) == TINY.utd * (int(r["env_step"]) - 40) and r["phase"] == "online"
    evals_a = [r for r in rows(a) if r["eval_return"]]
    evals_b = [r for r in rows(b) if r["eval_return"]]
    assert evals_b[0]["env_step"] == "0"
    assert evals_b[0]["eval_return"] == evals_a[-1]["eval_return"]  # same deterministic policy, nothing updated
    assert evals_b[0]["eval_normalized_score"] == evals_a[-1]["eval_normalized_score"] != ""
    assert "final eval return" in capsys.readouterr().out

    assert main(["eval", "--from", str(a), "--eval-episodes", "2", "--seed", str(10_000)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert float(evals_a[-1]["eval_return"]) == pytest.approx(result["eval_return"])


@pytest.fixture(scope="module")
def hopper_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hopper") / "run"
    assert main(["train", "--steps", "25", "--warmup-steps", "20", "--out", str(out), *TINY_FLAGS]) == 0
    return out


@pytest.mark.slow
def test_finetune_shapes_its_networks_as_the_checkpoints_and_refuses_a_preset_that_contradicts(tmp_path, capsys,
                                                                                                hopper_run):
    short = ["--steps", "25", "--warmup-steps", "20", "--batch-size", "5", "--utd", "2", "--eval-episodes", "1"]
    assert main(["finetune", "--from", str(hopper_run), *short, "--out", str(tmp_path / "ft")]) == 0
    agent = json.loads((tmp_path / "ft" / "config.json").read_text())["config"]["agent"]
    assert (agent["actor_hidden_dims"], agent["critic_hidden_dims"], agent["num_critics"]) == ([8], [8, 8], 4)
    capsys.readouterr()
    assert main(["finetune", "--from", str(hopper_run), *short, "--preset", "cpu", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"wsrl: error: --preset cpu sets --actor-hidden-dims 64 64, but checkpoint {hopper_run}/checkpoints/step_25 "
        "has 8; give the preset it was pre-trained with, or leave --preset out")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--env", "NoSuchEnv-v0"], "unknown environment"),
    (["train", "--steps", "0"], "--steps must be a positive integer"),
    (["train", "--utd", "0"], "utd must be >= 1"),
    (["train", "--preset", "nope"], "unknown preset"),
    (["train", "--no-such-flag", "1"], "Unrecognized options: --no-such-flag"),
    (["finetune"], "--from"),
    (["finetune", "--from", "/no/such/run"], "no such file or directory"),
    (["finetune", "--from", "EMPTY"], "not a wsrl checkpoint"),
    (["finetune", "--from", "HOPPER", "--env", "HalfCheetah-v5"], "observation dim 11"),
    (["finetune", "--from", "HOPPER", "--critic-hidden-dims", "16", "16"],
     "--critic-hidden-dims 16 16 contradicts checkpoint"),
    (["train", "--warmup-steps", "30"], "--steps 20 ends before the first gradient step, at env step 31 (after the "
                                        "30-step warmup); give --steps 31 or more, or a shorter --warmup-steps"),
    (["train", "--warmup-steps", "0", "--batch-size", "16"], "at env step 33 (after one UTD x batch (2 x 16))"),
    (["train", "--warmup-steps", "10", "--out", "HOPPER"], "already holds files"),
    (["launch"], "unknown command"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, hopper_run, args, message):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    args = [str(hopper_run) if a == "HOPPER" else str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    if "--out" not in args and args[0] != "launch":
        args += ["--out", str(out)]
    before = sorted(p.name for p in hopper_run.rglob("*"))
    if args[0] != "launch":  # tiny, short runs in case a check were missing; the case's own flags come last
        args = [args[0], *TINY_FLAGS, "--steps", "20", *args[1:]]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("wsrl: error:")
    assert not out.exists()
    assert sorted(p.name for p in hopper_run.rglob("*")) == before


def test_module_entry_point_prints_help():
    result = subprocess.run([sys.executable, "-m", "wsrl", "finetune", "--help"], capture_output=True, text=True,
                            check=True)
    assert "--warmup-steps" in result.stdout and "Warmup K" in result.stdout and "--utd" in result.stdout


@pytest.mark.slow
def test_a_run_without_evaluation_rollouts_uses_one_env_and_scores_its_training_episodes(tmp_path, monkeypatch,
                                                                                          capsys):
    from wsrl.train import online

    made = []
    monkeypatch.setattr(online, "make_env", lambda *a, **k: made.append(a[0]) or make_env(*a, **k))
    run = tmp_path / "robot"
    assert main(["train", "--env", "InvertedPendulum-v5", "--steps", "60", "--warmup-steps", "20", "--eval-every",
                 "20", "--eval-episodes", "0", "--out", str(run), *TINY_FLAGS[:-4]]) == 0
    assert made == ["InvertedPendulum-v5"]  # the training env alone
    scored = [r for r in rows(run) if r["train_return"]]
    assert [r["env_step"] for r in scored] == ["20", "40", "60"] and not any(r["eval_return"] for r in rows(run))
    summary = json.loads((run / "summary.json").read_text())
    episodes = summary["train_episodes"]
    assert sum(int(r["train_episodes"]) for r in scored) == episodes > 3  # every ended episode scored once
    assert summary["final_eval"] == {k: pytest.approx(float(scored[-1][k]) if k != "train_episodes" else
                                                      int(scored[-1][k])) for k in ("train_return", "train_episodes")}
    assert "return of the last training episodes" in capsys.readouterr().out
    assert main(["plot", str(run), "--out", str(tmp_path / "robot.png")]) == 0
    assert (tmp_path / "robot.png").stat().st_size > 10_000


@pytest.mark.slow
def test_resume_with_a_fresh_episode_ends_the_interrupted_one_instead_of_replaying_it(tmp_path, capsys,
                                                                                       monkeypatch):
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    # Pendulum's episodes are 200 steps: the checkpoint at step 30 is mid-episode.
    flags = ["--env", "Pendulum-v1", "--warmup-steps", "20", "--checkpoint-every", "30", "--eval-episodes", "0",
             *TINY_FLAGS[:-4]]
    for name in ("replayed", "fresh", "declared"):
        assert main(["train", "--steps", "30", "--out", str(tmp_path / name), *flags]) == 0
    capsys.readouterr()
    with monkeypatch.context() as patch:  # an env that declares it cannot be replayed (hardware) gets a fresh one
        patch.setitem(PendulumEnv.metadata, "replayable", False)
        assert main(["resume", str(tmp_path / "declared"), "--steps", "60"]) == 0
    assert "with a fresh episode" in capsys.readouterr().err
    assert json.loads((tmp_path / "declared" / "summary.json").read_text())["train_episodes"] == 1
    assert main(["resume", str(tmp_path / "replayed"), "--steps", "60"]) == 0
    assert "fresh episode" not in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "fresh"), "--steps", "60", "--fresh-episode"]) == 0
    assert "with a fresh episode: the run is exact up to this restart" in capsys.readouterr().err
    replayed, fresh = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("replayed", "fresh"))
    assert (replayed["env_steps"], fresh["env_steps"]) == (60, 60)
    assert replayed["train_episodes"] == 0  # the first episode goes on to step 200
    assert fresh["train_episodes"] == 1  # it ended at the checkpoint (step 30), scored like any other
    assert fresh["final_eval"]["train_episodes"] == 1


@pytest.mark.parametrize("steps, appended, capacity, rows", [
    (1600, 0, 2_000_000, CAPACITY_ROWS), (CAPACITY_ROWS, 0, 2_000_000, CAPACITY_ROWS),
    (CAPACITY_ROWS + 1, 0, 2_000_000, 2 * CAPACITY_ROWS), (100, 5000, 2_000_000, 2 * CAPACITY_ROWS),
    (5000, 0, 3000, 3000)])
def test_a_buffer_holds_the_budget_rounded_up_to_whole_capacity_rows_at_most_its_capacity(steps, appended, capacity,
                                                                                          rows):
    config = dataclasses.replace(OnlineConfig(), steps=steps, buffer_capacity=capacity)
    assert buffer_capacity(config, appended) == rows
