"""Ray: `wsrl compare --backend ray` on a real local Ray cluster (2 CPUs), against the local backend."""

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
        "--eval-episodes", "1", "--eval-every", "10", "--log-every", "10", "--checkpoint-every", "20",
        "--checkpoint-minutes", "0"]


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert main(["collect", "--env", "InvertedPendulum-v5", "--steps", "300", "--out", "test/pendulum-v0"]) == 0
    return "test/pendulum-v0"


def compare_args(out, *extra):
    return ["compare", "--dataset", "test/pendulum-v0", "--methods", "wsrl,sac-fast", "--seeds", "2", "--steps",
            "40", "--offline-steps", "300", "--out", str(out), *NETS, *extra]


def results(out):
    with open(out / "results.csv") as f:
        return [({k: v for k, v in row.items() if k != "run_dir"}, Path(row["run_dir"]).relative_to(out))
                for row in csv.DictReader(f)]


def ray_tasks():
    """Pids of the Ray workers running a wsrl task now (a worker's process title is ray::FUNCTION)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::_task"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_compare_on_ray_equals_the_local_backend_and_survives_a_killed_worker(tmp_path, dataset):
    assert main(compare_args(tmp_path / "local")) == 0

    out = tmp_path / "ray"
    driver = subprocess.Popen([sys.executable, "-m", "wsrl", *compare_args(out, "--backend", "ray")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoints = out / "pretrain" / "cql" / "seed0" / "checkpoints"
    deadline = time.time() + 180
    while not (checkpoints.is_dir() and any(checkpoints.glob("step_*"))) and time.time() < deadline:
        time.sleep(0.2)
    workers = ray_tasks()
    assert len(workers) == 1 and not (out / "pretrain" / "cql" / "summary.json").exists()
    os.kill(workers[0], signal.SIGKILL)  # the pre-training's worker, mid-run

    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output
    config = json.loads((out / "pretrain" / "cql" / "seed0" / "config.json").read_text())
    assert config["resumed"] and config["resumed"][0].startswith("wsrl resume")  # Ray's retry continued the run
    assert results(out) == results(tmp_path / "local")  # every score as if nothing had happened
    assert (out / "comparison.png").is_file()


def test_ray_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    base = ["compare", "--dataset", "x", "--methods", "wsrl", "--steps", "1", "--offline-steps", "1", "--out",
            str(tmp_path / "c"), "--backend", "ray"]
    assert main([*base, "--address", "127.0.0.1:9"]) == 2  # nothing listens at port 9
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in capsys.readouterr().err
    assert main([*base, "--address", "somewhere"]) == 2
    assert "is not HOST:PORT" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as without the extra installed
    assert main(base) == 2
    assert capsys.readouterr().err.strip() == "wsrl: error: --backend ray needs Ray: pip install 'wsrl[ray]'"
    assert not (tmp_path / "c").exists()
