import csv
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wsrl.cli import main
from wsrl.errors import UserError

pytestmark = pytest.mark.slow  # runs whole `wsrl` commands or processes (`pytest -m "not slow"` skips it)

NETS = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "8",
        "--eval-episodes", "1", "--eval-every", "10", "--log-every", "10"]


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    # Not the preset's env (Hopper-v5): every run must act in the environment the dataset names.
    assert main(["collect", "--env", "InvertedPendulum-v5", "--steps", "300", "--out", "test/pendulum-v0"]) == 0
    return "test/pendulum-v0"


def compare_args(out, methods="wsrl,sac-fast,cql", *extra):
    # WSRL's and SAC's warmup cut to 10 steps for them alone (the continued CQL has none): updates from step 33 on
    warmups = [token for m in ("wsrl", "sac-fast") if m in methods.split(",")
               for token in (f"--warmup-steps@{m}", "10")]
    return ["compare", "--dataset", "test/pendulum-v0", "--methods", methods, "--seeds", "2", "--steps", "40",
            "--offline-steps", "200", "--checkpoint-every", "20", "--checkpoint-minutes", "0", "--out", str(out),
            *NETS, *warmups, *extra]


def results(out):
    with open(out / "results.csv") as f:
        return [({k: v for k, v in row.items() if k != "run_dir"}, Path(row["run_dir"]).relative_to(out))
                for row in csv.DictReader(f)]


def ray_tasks(driver: int) -> list[int]:
    """Pids of the workers of `driver`'s Ray cluster running a wsrl task now (a worker's process title is
    ray::FUNCTION; the cluster's processes descend from the driver that started it)."""
    parents, titles = {}, {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                titles[int(proc.name)] = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == driver:
                return True
        return False

    return [pid for pid, title in titles.items() if title.startswith(b"ray::_task") and descends(pid)]


def test_compare_writes_results_and_figure_resumes_after_a_kill_and_ray_gives_the_same(tmp_path, dataset, capsys):
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

    # WSRL's part of the comparison with every process a task on a local Ray cluster, the pre-training's worker
    # killed mid-run: Ray retries the task, which continues the run from its checkpoint; the results are the same.
    ray_out = tmp_path / "ray"
    driver = subprocess.Popen([sys.executable, "-m", "wsrl", *compare_args(ray_out, "wsrl", "--backend", "ray")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Killed once both seeds have a checkpoint (they write theirs one after the other; a kill between the two leaves
    # no step common to both, and the retry would rightly start again).
    checkpoints = [ray_out / "pretrain" / "cql" / f"seed{seed}" / "checkpoints" for seed in (0, 1)]
    deadline = time.time() + 600  # an upper bound: the loop ends at the event (slow on a loaded host)
    while not all(c.is_dir() and any(c.glob("step_*")) for c in checkpoints) and time.time() < deadline:
        time.sleep(0.2)
    workers = ray_tasks(driver.pid)
    assert len(workers) == 1 and not (ray_out / "pretrain" / "cql" / "summary.json").exists()
    os.kill(workers[0], signal.SIGKILL)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output
    config = json.loads((ray_out / "pretrain" / "cql" / "seed0" / "config.json").read_text())
    assert config["resumed"] and config["resumed"][0].startswith("wsrl resume")  # Ray's retry continued the run
    assert results(ray_out) == [r for r in results(out) if r[0]["method"] == "wsrl"]  # as if nothing had happened
    assert (ray_out / "comparison.png").is_file()


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


@pytest.mark.parametrize("per_process", [True, False])
def test_first_seed_offsets_every_run_of_a_comparison(tmp_path, per_process):
    from wsrl.compare import Comparison, method_jobs, pretrain_jobs

    c = Comparison("data", ("wsrl", "rlpd"), 2, 10, 10, tmp_path, env="Hopper-v5", seeds_per_process=per_process,
                   first_seed=3)
    pretrained = pretrain_jobs(c)
    jobs = method_jobs(c, pretrained)
    runs = [job for group in (pretrained["cql"], jobs["wsrl"], jobs["rlpd"]) for job in group]
    seeds = [(job.args[job.args.index("--seed") + 1], job.args[job.args.index("--seeds") + 1]) for job in runs]
    if per_process:
        assert seeds == [("3", "2")] * 3 and [job.seeds for job in runs] == [(3, 4)] * 3
        assert jobs["wsrl"][0].run_dir(4) == tmp_path / "runs" / "wsrl" / "seed4"
    else:
        assert seeds == [("3", "1"), ("4", "1")] * 3
        assert [job.out.name for job in jobs["wsrl"]] == ["wsrl_seed3", "wsrl_seed4"]
        assert jobs["wsrl"][1].args[jobs["wsrl"][1].args.index("--from") + 1] == str(tmp_path / "pretrain" /
                                                                                     "cql_seed4")


def test_compare_rejects_unknown_methods(tmp_path, capsys):
    assert main(["compare", "--dataset", "x", "--methods", "wsrl,magic", "--steps", "1", "--offline-steps", "1",
                 "--out", str(tmp_path / "c")]) == 2
    assert "unknown method(s) magic; valid: wsrl" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert main(["compare", "--dataset", "x", "--methods", "wsrl", "--steps", "1", "--offline-steps", "1",
                 "--first-seed", "-1", "--out", str(tmp_path / "c")]) == 2
    assert "--first-seed must be >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_compare_refuses_flags_that_would_override_a_methods_settings(tmp_path, capsys):
    assert main(["compare", "--dataset", "x", "--methods", "wsrl,wsrl-no-warmup", "--steps", "1", "--offline-steps",
                 "1", "--out", str(tmp_path / "c"), "--warmup-steps", "100"]) == 2
    assert "--warmup-steps would override what --methods wsrl-no-warmup set" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_compare_sets_a_flag_for_one_method_with_flag_at_method(tmp_path):
    from wsrl.compare import Comparison, method_jobs, pretrain_jobs
    from wsrl.errors import UserError

    c = Comparison("data", ("wsrl", "wsrl-no-warmup", "cql"), 1, 10, 10, tmp_path, preset="cpu", env="Hopper-v5",
                   extra_flags=("--warmup-steps@wsrl", "100", "--buffer-capacity", "500"))
    c.validate()
    pretrained = pretrain_jobs(c)
    jobs = method_jobs(c, pretrained)
    args = {name: group[0].args for name, group in jobs.items()}
    assert args["wsrl"][args["wsrl"].index("--warmup-steps"):][:4] == ("--warmup-steps", "100", "--buffer-capacity",
                                                                       "500")
    assert "--warmup-steps" not in args["wsrl-no-warmup"] and "--warmup-steps" not in args["cql"]
    assert "--warmup-steps" not in pretrained["cql"][0].args
    for flags, message in [(("--warmup-steps@rlpd", "1"), "'rlpd' is not one of --methods wsrl"),
                           (("--utd@cql", "2"), "method cql has no flag --utd")]:
        with pytest.raises(UserError, match=message):
            Comparison("data", ("wsrl", "cql"), 1, 10, 10, tmp_path, preset="cpu", extra_flags=flags).validate()


def test_compare_passes_the_no_form_of_a_boolean_flag_to_every_run_that_has_it(tmp_path):
    from wsrl.compare import Comparison, method_jobs, pretrain_jobs
    from wsrl.errors import UserError

    c = Comparison("data", ("wsrl", "sac-fast"), 1, 10, 10, tmp_path, preset="cpu", env="Hopper-v5",
                   extra_flags=("--no-step-all-optimizers", "--buffer-capacity", "500"))
    c.validate()
    pretrained = pretrain_jobs(c)
    jobs = method_jobs(c, pretrained)
    for job in (*pretrained["cql"], *jobs["wsrl"], *jobs["sac-fast"]):
        assert "--no-step-all-optimizers" in job.args
    for job in (*jobs["wsrl"], *jobs["sac-fast"]):
        assert job.args[job.args.index("--no-step-all-optimizers") + 1:][:2] == ("--buffer-capacity", "500")
    assert "--buffer-capacity" not in pretrained["cql"][0].args  # offline runs have no buffer to size
    for token in ("--no-eval-episodes", "--no-such-flag"):  # not a boolean flag, not a flag
        with pytest.raises(UserError, match=f"unknown flag\\(s\\) {token} "):
            Comparison("data", ("wsrl",), 1, 10, 10, tmp_path, preset="cpu", extra_flags=(token,)).validate()
    with pytest.raises(UserError, match="--no-step-all-optimizers would override what --methods rlpd set"):
        Comparison("data", ("wsrl", "rlpd"), 1, 10, 10, tmp_path, preset="cpu",
                   extra_flags=("--no-step-all-optimizers",)).validate()  # RLPD's own code steps only one network


def test_an_interrupted_run_is_resumed_not_restarted(tmp_path, monkeypatch):
    from wsrl import compare
    from wsrl.jobs import command

    run = tmp_path / "runs" / "wsrl_seed0"
    assert main(["train", "--env", "Hopper-v5", "--steps", "30", "--warmup-steps", "20", "--out", str(run),
                 "--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "--num-critics", "2", "--eval-episodes",
                 "1", "--batch-size", "5", "--utd", "2"]) == 0
    (run / "summary.json").unlink()  # as if killed after its last checkpoint
    started = []
    processes = compare.Processes()
    monkeypatch.setattr(processes, "run", lambda command, log: started.append(command) or 0)
    compare._execute(compare.Job(("train", "--out", str(run), "--overwrite"), run, (0,)), processes)
    assert started == [command(("resume", str(run)))]
    (run / "summary.json").write_text("{}")  # finished: not run again
    compare._execute(compare.Job(("train", "--steps", "30", "--out", str(run), "--overwrite"), run, (0,)), processes)
    assert len(started) == 1
    # A comparison of another budget on the same directory: refused, not mixed in.
    with pytest.raises(UserError, match=f"{run} holds a run of 30 steps, not 40: give another --out"):
        compare._execute(compare.Job(("train", "--steps", "40", "--out", str(run)), run, (0,)), processes)
    assert len(started) == 1
    # ... and so is one of other seeds (a comparison's --first-seed 1 on the directory of seed 0).
    with pytest.raises(UserError, match=f"{run} holds seed\\(s\\) 0, not 1: run other seeds"):
        compare._execute(compare.Job(("train", "--steps", "30", "--out", str(run)), run, (1,)), processes)
    assert len(started) == 1


def test_each_method_starts_once_its_pretraining_ends_and_the_others_do_not_wait(tmp_path, monkeypatch):
    from wsrl import compare

    pre_a, pre_b = compare.Job((), tmp_path / "pre_a", (0,)), compare.Job((), tmp_path / "pre_b", (0,))
    jobs = [pre_a, pre_b, compare.Job((), tmp_path / "after_a", (0,), pre_a.out),
            compare.Job((), tmp_path / "free", (0,)), compare.Job((), tmp_path / "after_b", (0,), pre_b.out)]
    events, lock, free_started = [], threading.Lock(), threading.Event()

    def execute(job, processes):
        with lock:
            events.append(("start", job.out.name))
        if job.out.name == "free":
            free_started.set()
        if job.out.name == "pre_a":  # ends only once a job that waits for no pre-training has started
            assert free_started.wait(30)
            if fail:
                raise UserError("pre_a failed")
        with lock:
            events.append(("end", job.out.name))

    monkeypatch.setattr(compare, "_execute", execute)
    fail = False
    assert sorted(job.out.name for job in compare._local(jobs, workers=2)) == sorted(j.out.name for j in jobs)
    starts = [name for kind, name in events if kind == "start"]
    assert set(starts[:2]) == {"pre_a", "pre_b"} and starts[2] == "free"  # the first ready job in the list's order
    for job, pre in (("after_a", "pre_a"), ("after_b", "pre_b")):
        assert events.index(("start", job)) > events.index(("end", pre))
    assert max(itertools.accumulate(+1 if kind == "start" else -1 for kind, _ in events)) == 2  # --workers at once

    # A failed pre-training: the methods waiting for it never start; the comparison stops with its reason.
    events.clear()
    free_started.clear()
    fail = True
    with pytest.raises(UserError, match="pre_a failed"):
        list(compare._local(jobs, workers=2))
    assert ("start", "after_a") not in events


def test_sigterm_stops_a_comparison_and_its_running_processes_after_their_checkpoints(tmp_path, dataset):
    out = tmp_path / "cmp"
    proc = subprocess.Popen([sys.executable, "-m", "wsrl", *compare_args(out, "cql", "--seeds", "1",
                                                                          "--offline-steps", "100000")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoints = out / "pretrain" / "cql" / "checkpoints"  # one seed: the run directory is the process's own
    deadline = time.time() + 120
    while not (checkpoints.is_dir() and any(checkpoints.glob("step_*"))) and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)  # to the comparison only, not to its process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == ("wsrl: comparison stopped; its running runs wrote checkpoints: run the "
                                            "same command again to resume it")
    # The pre-training process got the signal too: it wrote a checkpoint of the step it stopped at and ended.
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(out).encode() in _read(p)]
    stopped_at = re.search(r"stopped at \w+ step (\d+) after writing a checkpoint",
                           (out / "pretrain" / "cql.log").read_text())
    assert stopped_at and (checkpoints / f"step_{stopped_at[1]}").is_dir()
    assert not (checkpoints.parent / "summary.json").exists()
    assert not (out / "runs").exists()  # no method started


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def test_result_row_dip_is_the_lowest_evaluation_within_10k_steps_after_the_warmup(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"warmup_steps": 5000}}))
    (run / "summary.json").write_text("{}")
    # (env step, normalised score): the warmup's evaluations (steps <= 5000) and the one after the window (25000)
    # are lower than the dip but outside its window.
    evals = [(0, 50.0), (5000, 1.0), (10000, 30.0), (15000, 20.0), (15000 + 1, 25.0), (25000, 0.0), (30000, 90.0)]
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["env_step", "phase", "eval_return", "eval_normalized_score"])
        writer.writeheader()
        for step, score in evals:
            writer.writerow({"env_step": step, "phase": "online", "eval_return": 10 * score,
                             "eval_normalized_score": score})
    from wsrl.compare import result_row, summary_table

    row = result_row("wsrl", 0, run)
    assert (row["score_start"], row["score_dip"], row["score_end"]) == (50.0, 20.0, 90.0)
    (run / "config.json").write_text(json.dumps({"config": {"warmup_steps": 0}}))  # no warmup: from step 0 on
    assert result_row("calql", 0, run)["score_dip"] == 1.0
    [cells] = summary_table([row, {**row, "score_dip": 30.0}])
    assert cells[:4] == ("wsrl", "2", "50.00 ± 0.00", "25.00 ± 5.00")
