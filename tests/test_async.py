"""--async: the env loop acts at the env's own pace while a background thread stores and updates."""

import csv
import json
import time

import gymnasium as gym
import numpy as np
import pytest

import wsrl
from wsrl.cli import main
from wsrl.envs import RealTime
from wsrl.train import online

pytestmark = pytest.mark.slow  # runs whole `wsrl` commands (`pytest -m "not slow"` skips it)

TINY = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "5",
        "--utd", "2", "--log-every", "10"]


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_real_time_wrapper_holds_its_period_and_records_the_late_steps():
    env = RealTime(gym.make("Pendulum-v1"), hz=100)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(5):
        env.step(env.action_space.sample())
    time.sleep(0.05)  # a controller that is late once
    env.step(env.action_space.sample())
    assert time.perf_counter() - start >= 0.04  # four full periods between the first five steps
    assert min(env.periods[:4]) >= 0.01 and env.periods[4] >= 0.05


def test_async_run_makes_the_synchronous_runs_updates_logs_the_realised_utd_and_resumes(tmp_path):
    flags = ["train", "--env", "InvertedPendulum-v5", "--steps", "60", "--warmup-steps", "20", "--eval-every", "30",
             "--eval-episodes", "1", *TINY]
    assert main([*flags, "--out", str(tmp_path / "sync")]) == 0
    assert main([*flags, "--async", "--out", str(tmp_path / "async")]) == 0
    sync, asyn = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("sync", "async"))
    assert asyn["grad_steps"] == sync["grad_steps"] > 0  # the updates still due at the end are made
    assert asyn["env_steps"] == 60
    logged = [float(r["utd_realised"]) for r in rows(tmp_path / "async") if r["utd_realised"]]
    assert logged and all(0 <= u <= 2 for u in logged)  # never more than the configured UTD
    assert not any(r["utd_realised"] for r in rows(tmp_path / "sync"))
    assert main(["resume", str(tmp_path / "async"), "--steps", "90"]) == 0
    assert json.loads((tmp_path / "async" / "summary.json").read_text())["env_steps"] == 90


def test_async_loop_keeps_a_real_time_envs_period_while_updates_are_slow(tmp_path, monkeypatch):
    """Each update takes 0.2 s, ten control periods at 50 Hz: a loop that waited for updates would step at 5 Hz."""
    learn = online._learn_only

    def slow(*args, **kwargs):
        time.sleep(0.2)
        return learn(*args, **kwargs)

    monkeypatch.setattr(online, "_learn_only", slow)
    made = []

    def pendulum_50hz():
        made.append(RealTime(gym.make("Pendulum-v1"), hz=50))
        return made[-1]

    run = wsrl.train(pendulum_50hz, preset="demo", out=tmp_path / "rt", steps=150, warmup_steps=20, batch_size=5,
                     eval_episodes=0, eval_every=50, log_every=10, asynchronous=True)
    [env] = made
    assert np.median(env.periods) < 0.04  # the 20 ms period, held (a blocked loop: >= 200 ms)
    realised = [float(r["utd_realised"]) for r in rows(run.directory) if r["utd_realised"]]
    assert realised and realised[-1] < 4 * 0.5  # the learner fell behind instead of the robot
    assert run.summary["grad_steps"] == 4 * (150 - 21 + 1)  # and caught up before the run ended


def test_async_refuses_several_seeds_in_one_line(tmp_path, capsys):
    assert main(["train", "--env", "InvertedPendulum-v5", "--steps", "60", "--warmup-steps", "20", "--async",
                 "--seeds", "2", "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "--async runs one seed" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
