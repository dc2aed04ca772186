"""Exact resume: a run SIGKILLed at two random points and resumed ends bit-identical to the run never interrupted."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from wsrl.cli import main

pytestmark = pytest.mark.slow  # runs whole `wsrl` commands or processes (`pytest -m "not slow"` skips it)

NETS = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "8"]
RUN = ["--eval-episodes", "1", "--log-every", "10", "--checkpoint-every", "20", "--checkpoint-minutes", "0"]
WALL_CLOCK = ("wall_time", "env_steps_per_s")


@pytest.fixture(scope="module")
def minari_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        assert main(["collect", "--env", "Pendulum-v1", "--steps", "600", "--out", "test/pendulum-v0"]) == 0
        yield {**os.environ, "MINARI_DATASETS_PATH": str(root)}


@pytest.fixture(scope="module")
def pretrained(minari_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "calql"
    assert main(["pretrain", "--dataset", "test/pendulum-v0", "--algo", "calql", "--steps", "30", "--out", str(out),
                 *NETS, *RUN]) == 0
    return out


def checkpoint_steps(run_dir):
    """Steps with a checkpoint (of every seed, in a multi-seed run)."""
    members = sorted(run_dir.glob("seed*")) or [run_dir]
    return sorted(set.intersection(*({int(p.name.split("_")[1]) for p in (m / "checkpoints").glob("step_*")}
                                     for m in members)))


def run_until_killed(args, out, at_least, env, rng):
    """Start `wsrl ARGS` and SIGKILL it at a random step after it checkpointed step `at_least`."""
    proc = subprocess.Popen([sys.executable, "-m", "wsrl", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while proc.poll() is None and time.time() < deadline and not any(s >= at_least for s in checkpoint_steps(out)):
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.03))
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {err.decode()[-500:]}"


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in csv.DictReader(f)]


def without_wall_clock(summary):
    if isinstance(summary, dict):
        return {k: without_wall_clock(v) for k, v in summary.items() if k not in ("wall_time_s", "env_steps_per_s")}
    return summary


def assert_identical(resumed, uninterrupted, online):
    """Every seed's run directory identical (metrics, newest checkpoint, summary); a multi-seed run's summary too."""
    members = sorted(p.name for p in uninterrupted.glob("seed*"))
    for name in members or [""]:
        assert_identical_run(resumed / name, uninterrupted / name, online)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (resumed, uninterrupted)]
    assert without_wall_clock(summaries[0]) == without_wall_clock(summaries[1])


def assert_identical_run(resumed, uninterrupted, online):
    assert rows(resumed) == rows(uninterrupted)
    last = f"step_{max(checkpoint_steps(uninterrupted))}"
    assert max(checkpoint_steps(resumed)) == max(checkpoint_steps(uninterrupted))
    a, b = (d / "checkpoints" / last for d in (resumed, uninterrupted))
    assert (a / "agent.msgpack").read_bytes() == (b / "agent.msgpack").read_bytes()  # parameters, Adam state, rng
    if online:
        with np.load(a / "buffer.npz") as x, np.load(b / "buffer.npz") as y:
            assert set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)


# (command line, kill windows in steps: the first kill falls after a checkpoint in the first window, the second
# after one in the second). Pendulum-v1: 200-step episodes, so Cal-QL's updates wait for the first one to end.
# "train-sac" runs 2 seeds in one process (--seeds): a kill may fall between two seeds' checkpoints. Continued Cal-QL
# online (returns bookkeeping) is covered by "calql-retain", which also mixes in offline data.
ONLINE = {
    "train-sac": (["train", "--env", "Hopper-v5", "--steps", "400", "--warmup-steps", "60", "--seeds", "2"],
                  (40, 120), (160, 300)),
    "wsrl-warmup-then-online": (["finetune", "--method", "wsrl", "--steps", "400", "--warmup-steps", "150"],
                                (20, 100), (180, 300)),
    "calql-retain": (["finetune", "--method", "calql-retain", "--dataset", "test/pendulum-v0", "--steps", "400"],
                     (40, 140), (220, 320)),
    "jsrl": (["finetune", "--method", "jsrl", "--steps", "400", "--eval-every", "100"], (40, 140), (200, 320)),
}


@pytest.mark.parametrize("name", sorted(ONLINE))
def test_online_run_killed_twice_and_resumed_is_bit_identical(tmp_path, monkeypatch, minari_env, pretrained, name):
    args, first, second = ONLINE[name]
    rng = random.Random(name)
    start = ["--from", str(pretrained)] if args[0] == "finetune" else []
    sac = NETS + ["--utd", "2"] if "calql" not in name else []  # continued learners keep the checkpoint's settings
    full = [*args, *start, *sac, *RUN]
    monkeypatch.setenv("MINARI_DATASETS_PATH", minari_env["MINARI_DATASETS_PATH"])
    out = tmp_path / "killed"
    run_until_killed([*full, "--out", str(out)], out, rng.randrange(*first, 20), minari_env, rng)
    run_until_killed(["resume", str(out)], out, rng.randrange(*second, 20), minari_env, rng)
    assert main(["resume", str(out)]) == 0
    # The uninterrupted run in this process (it reuses the programs the last resume compiled).
    assert main([*full, "--out", str(tmp_path / "uninterrupted")]) == 0
    assert_identical(out, tmp_path / "uninterrupted", online=True)


@pytest.mark.parametrize("algo", ["calql", "iql"])  # CQL is Cal-QL's learner without the bound
def test_pretraining_killed_twice_and_resumed_is_bit_identical(tmp_path, monkeypatch, minari_env, algo):
    rng = random.Random(algo)
    nets = NETS if algo != "iql" else ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8"]
    seeds = ["--seeds", "2"] if algo == "calql" else []  # two seeds in one process
    full = ["pretrain", "--dataset", "test/pendulum-v0", "--algo", algo, "--steps", "800", "--eval-every", "400",
            *nets, *seeds, *RUN]
    monkeypatch.setenv("MINARI_DATASETS_PATH", minari_env["MINARI_DATASETS_PATH"])
    out = tmp_path / "killed"
    run_until_killed([*full, "--out", str(out)], out, rng.randrange(100, 300, 20), minari_env, rng)
    run_until_killed(["resume", str(out)], out, rng.randrange(400, 600, 20), minari_env, rng)
    assert main(["resume", str(out)]) == 0
    assert main([*full, "--out", str(tmp_path / "uninterrupted")]) == 0
    assert_identical(out, tmp_path / "uninterrupted", online=False)


@pytest.mark.parametrize("case, message", [
    ("not-a-run", "is not a wsrl run directory"),
    ("corrupt-agent", "corrupt or missing agent.msgpack"),
    ("corrupt-buffer", "corrupt buffer.npz"),
    ("truncated-loop", "unreadable loop.json"),
    ("old-version", "incompatible wsrl"),
    ("steps-below", "below the newest checkpoint"),
])
def test_resume_bad_input_is_one_line_and_changes_nothing(tmp_path, capsys, case, message):
    run = tmp_path / "run"
    assert main(["train", "--env", "Hopper-v5", "--steps", "40", "--warmup-steps", "30", *NETS, "--eval-episodes",
                 "1", "--checkpoint-every", "20", "--out", str(run)]) == 0
    target, extra = run, []
    newest = run / "checkpoints" / "step_40"
    if case == "not-a-run":
        target = tmp_path
    elif case == "corrupt-agent":
        (newest / "agent.msgpack").write_bytes(b"\x00broken")
    elif case == "corrupt-buffer":
        (newest / "buffer.npz").write_bytes((newest / "buffer.npz").read_bytes()[:50])
    elif case == "truncated-loop":
        (newest / "loop.json").write_text('{"format": 1, "env_st')
    elif case == "old-version":
        record = json.loads((run / "config.json").read_text())
        del record["kind"]
        (run / "config.json").write_text(json.dumps(record))
    else:
        extra = ["--steps", "10"]
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["resume", str(target), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_out_that_is_a_file_or_cannot_be_created_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "run", "cannot be written")):
        assert main(["train", "--steps", "40", "--warmup-steps", "0", "--out", str(out), *NETS]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    assert (tmp_path / "file").read_text() == "x"
