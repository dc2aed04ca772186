"""`wsrl sweep`: a Ray Tune grid over a tiny `wsrl train` on a real local Ray cluster, and its bad input."""

import csv
import json
import sys

import pytest

from wsrl.cli import main

pytestmark = pytest.mark.slow  # runs whole `wsrl` commands or processes (`pytest -m "not slow"` skips it)

TINY = {"env": "InvertedPendulum-v5", "steps": 40, "actor_hidden_dims": [8],
        "critic_hidden_dims": [8, 8], "num_critics": 2, "batch_size": 8, "eval_episodes": 1, "eval_every": 20,
        "log_every": 20, "critic_layer_norm": False}


def write_spec(path, grid, args=TINY, command="train"):
    lines = [f'command = "{command}"', "[args]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in args.items()]
    lines += ["[grid]"] + [f"{k} = {json.dumps(v)}" for k, v in grid.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def ray_session():
    yield
    import ray

    ray.shutdown()


def read_results(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_a_grid_sweep_runs_every_trial_as_a_run_directory_tabulates_plots_and_continues(tmp_path, ray_session,
                                                                                         capsys):
    # Trials of one shape (seed x warmup length): after the first, each loads its programs from the compile cache.
    spec = write_spec(tmp_path / "grid.toml", {"seed": [0, 1], "warmup_steps": [20, 30]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    rows = read_results(out)
    assert sorted((r["seed"], r["warmup_steps"]) for r in rows) == [("0", "20"), ("0", "30"), ("1", "20"), ("1", "30")]
    scores = [float(r["score_end"]) for r in rows]
    assert scores == sorted(scores, reverse=True)  # best first
    for row in rows:
        config = json.loads((out / "trials" / row["trial"] / "config.json").read_text())["config"]
        assert (config["seed"], config["warmup_steps"]) == (int(row["seed"]), int(row["warmup_steps"]))
        assert config["steps"] == 40 and config["agent"]["critic_hidden_dims"] == [8, 8]
        assert row["status"] == "done" and row["evaluations"] == "3"  # at steps 0, 20 and 40
        with open(out / "trials" / row["trial"] / "metrics.csv") as f:
            last_eval = [r["eval_return"] for r in csv.DictReader(f) if r["eval_return"]][-1]
        assert float(row["score_end"]) == float(last_eval)  # a trial's score is its run's own evaluation
    assert (out / "best.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "4 trials, best first" in printed and rows[0]["trial"] in printed

    # Again: Tune restores the finished experiment from OUT/tune, runs nothing, and tabulates the same trials.
    stamps = {r["trial"]: (out / "trials" / r["trial"] / "summary.json").stat().st_mtime for r in rows}
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    assert read_results(out) == rows
    assert stamps == {r["trial"]: (out / "trials" / r["trial"] / "summary.json").stat().st_mtime for r in rows}


@pytest.mark.parametrize("grid, args, message", [
    ({"magic_number": [1, 2]}, TINY, "Unrecognized options: --magic-number"),
    ({"warmup_steps": [100, -1]}, TINY, "the trial {'warmup_steps': -1}: --warmup-steps must be >= 0, got -1"),
    ({"utd": []}, TINY, "grid.utd must be a non-empty list of values"),
    ({"utd": [1]}, {**TINY, "out": "elsewhere"}, "'out' is set by the sweep, not the spec"),
])
def test_sweep_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, grid, args, message):
    spec = write_spec(tmp_path / "bad.toml", grid, args)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "sweep").exists()


def test_sweep_without_ray_is_one_line(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path / "ok.toml", {"utd": [1]})
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sweep")]) == 2
    assert capsys.readouterr().err.strip() == "wsrl: error: wsrl sweep needs Ray: pip install 'wsrl[ray]'"
    assert not (tmp_path / "sweep").exists()
