import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wsrl.cli import main

NETS = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "8",
        "--eval-episodes", "1", "--eval-every", "10", "--log-every", "10"]


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    # Not the preset's env (Hopper-v5): every run must act in the environment the dataset names.
    assert main(["collect", "--env", "InvertedPendulum-v5", "--steps", "300", "--out", "test/pendulum-v0"]) == 0
    return "test/pendulum-v0"


def compare_args(out, methods="wsrl,sac-fast,cql"):
    return ["compare", "--dataset", "test/pendulum-v0", "--methods", methods, "--seeds", "2", "--steps", "30",
            "--offline-steps", "20", "--out", str(out), *NETS]


def test_compare_writes_results_and_figure_and_resumes_after_a_kill(tmp_path, dataset, capsys):
    out = tmp_path / "cmp"
    env = {**os.environ, "MINARI_DATASETS_PATH": os.environ["MINARI_DATASETS_PATH"]}
    proc = subprocess.Popen([sys.executable, "-m", "wsrl", *compare_args(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # The locomotion preset pre-trains CQL: both seeds in one process, then each method's seeds in one process.
    pretrained = out / "pretrain" / "cql" / "summary.json"
    while not pretrained.is_file() and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert pretrained.is_file() and not (out / "results.csv").exists()
    stamp = pretrained.stat().st_mtime

    assert main(compare_args(out)) == 0
    assert pretrained.stat().st_mtime == stamp  # the finished pre-training was reused, not redone
    assert sorted(p.name for p in (out / "pretrain").iterdir() if p.is_dir()) == ["cql"]  # shared by wsrl, cql
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [(m, s) for m in ("wsrl", "sac-fast", "cql") for s in "01"]
    assert [Path(r["run_dir"]).relative_to(out).as_posix() for r in rows] == [
        f"runs/{m}/seed{s}" for m in ("wsrl", "sac-fast", "cql") for s in "01"]
    for method in ("wsrl", "cql"):  # seed s fine-tunes seed s's pre-training
        record = json.loads((out / "runs" / method / "seed1" / "config.json").read_text())
        assert record["init_from"] == str(out / "pretrain" / "cql" / "seed1")
    assert all(r["score_start"] and r["score_end"] and r["auc"] for r in rows)
    envs = {json.loads((Path(r["run_dir"]) / "config.json").read_text())["config"]["env"] for r in rows}
    assert envs == {"InvertedPendulum-v5"}
    assert (out / "comparison.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "wsrl compare" in printed and "sac-fast" in printed


@pytest.mark.parametrize("per_process", [True, False])
def test_compare_runs_each_methods_seeds_in_one_process_or_one_process_per_seed(tmp_path, per_process):
    from wsrl.compare import Comparison, method_jobs, pretrain_jobs

    c = Comparison("data", ("wsrl", "rlpd"), 3, 10, 10, tmp_path, env="Hopper-v5", seeds_per_process=per_process)
    pretrained = pretrain_jobs(c)
    jobs = method_jobs(c, pretrained)

    def flag(job, name):
        return job.args[job.args.index(name) + 1]

    if per_process:
        [pre], [wsrl], [rlpd] = pretrained["cql"], jobs["wsrl"], jobs["rlpd"]
        assert [(flag(j, "--seed"), flag(j, "--seeds")) for j in (pre, wsrl, rlpd)] == [("0", "3")] * 3
        assert flag(wsrl, "--from") == str(tmp_path / "pretrain" / "cql") and "--from" not in rlpd.args
        assert wsrl.run_dir(2) == tmp_path / "runs" / "wsrl" / "seed2"
    else:
        assert [(flag(j, "--seed"), flag(j, "--seeds")) for j in jobs["wsrl"]] == [("0", "1"), ("1", "1"), ("2", "1")]
        assert [flag(j, "--from") for j in jobs["wsrl"]] == [str(tmp_path / "pretrain" / f"cql_seed{s}")
                                                             for s in range(3)]
        assert jobs["rlpd"][2].run_dir(2) == tmp_path / "runs" / "rlpd_seed2"


def test_compare_rejects_unknown_methods(tmp_path, capsys):
    assert main(["compare", "--dataset", "x", "--methods", "wsrl,magic", "--steps", "1", "--offline-steps", "1",
                 "--out", str(tmp_path / "c")]) == 2
    assert "unknown method(s) magic; valid: wsrl" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_compare_refuses_flags_that_would_override_a_methods_settings(tmp_path, capsys):
    assert main(["compare", "--dataset", "x", "--methods", "wsrl,wsrl-no-warmup", "--steps", "1", "--offline-steps",
                 "1", "--out", str(tmp_path / "c"), "--warmup-steps", "100"]) == 2
    assert "--warmup-steps would override what --methods wsrl-no-warmup set" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_an_interrupted_run_is_resumed_not_restarted(tmp_path, monkeypatch):
    from wsrl import compare

    run = tmp_path / "runs" / "wsrl_seed0"
    assert main(["train", "--env", "Hopper-v5", "--steps", "20", "--warmup-steps", "20", "--out", str(run),
                 "--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "--num-critics", "2", "--eval-episodes",
                 "1"]) == 0
    (run / "summary.json").unlink()  # as if killed after its last checkpoint
    started = []
    monkeypatch.setattr(compare.subprocess, "run", lambda command, **kw: started.append(command) or
                        subprocess.CompletedProcess(command, 0))
    compare._execute(compare._wsrl("train", "--out", str(run), "--overwrite"), run)
    assert started == [compare._wsrl("resume", str(run))]
