"""Stopping a run: SIGTERM writes a checkpoint of the current step (and `wsrl resume` continues it, also past its
budget); a diverging run stops with one line and keeps its last good checkpoint."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_resume import NETS, checkpoint_steps, rows

from wsrl.cli import main

pytestmark = pytest.mark.slow  # runs whole `wsrl` commands or processes (`pytest -m "not slow"` skips it)


def test_sigterm_checkpoints_the_current_step_and_resume_extends_the_budget(tmp_path, capsys):
    args = ["train", "--env", "Hopper-v5", "--warmup-steps", "60", *NETS, "--utd", "2", "--eval-episodes", "1",
            "--log-every", "10", "--checkpoint-every", "0", "--checkpoint-minutes", "0"]
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "wsrl", *args, "--steps", "100000", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(rows(out) if (out / "metrics.csv").is_file() else []) < 8:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and f"wsrl resume {out}" in err.strip().splitlines()[-1]
    [stopped_at] = checkpoint_steps(out)  # no scheduled checkpoint: this one was written on SIGTERM
    assert stopped_at > 60 and not (out / "summary.json").exists()  # after the first update (step 61)

    # Resume with a smaller budget than the original one, then extend that finished run: equal to one 2x run.
    assert main(["resume", str(out), "--steps", str(stopped_at + 30)]) == 0
    assert main(["resume", str(out), "--steps", str(stopped_at + 60)]) == 0
    assert main([*args, "--steps", str(stopped_at + 60), "--out", str(tmp_path / "straight")]) == 0
    resumed, straight = rows(out), rows(tmp_path / "straight")
    # The shorter budget evaluated at its end (stopped_at + 30); the straight run did not: that row is extra.
    extra = [r for r in resumed if r not in straight]
    assert [r["env_step"] for r in extra] == [str(stopped_at + 30)] and extra[0]["eval_return"]
    assert [r for r in resumed if r not in extra] == straight
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["steps"] == stopped_at + 60 and len(config["resumed"]) == 2


def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo logs the non-finite actions to ./MUJOCO_LOG.TXT
    out = tmp_path / "run"
    code = main(["train", "--env", "Hopper-v5", "--steps", "300", "--warmup-steps", "30", *NETS, "--utd", "2",
                 "--reward-scale", "1e38", "--eval-episodes", "1", "--log-every", "10", "--checkpoint-every", "10",
                 "--checkpoint-minutes", "0", "--out", str(out)])
    assert code == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsrl: diverged at step") and "\n" not in err and "not finite" in err
    diverged = json.loads((out / "summary.json").read_text())["diverged"]
    assert diverged["step"] > 30
    kept = max(checkpoint_steps(out))
    assert kept < diverged["step"]
    from wsrl import checkpoint
    from wsrl.agents import agent_from_meta

    directory = checkpoint.resolve(out)
    agent = checkpoint.restore(agent_from_meta(checkpoint.load_meta(directory)), directory)
    import jax

    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(agent.critic.params))


def test_a_finished_run_resumed_past_its_budget_is_not_finished_until_it_ends(tmp_path, monkeypatch):
    """A run extended by `wsrl resume --steps` and stopped before its new end must not look finished (compare and the
    sac-ladder skip finished runs): resuming removes the summary of the old budget."""
    out = tmp_path / "run"
    assert main(["train", "--env", "Hopper-v5", "--steps", "40", "--warmup-steps", "30", *NETS, "--eval-episodes",
                 "1", "--checkpoint-every", "20", "--out", str(out)]) == 0
    assert (out / "summary.json").is_file()
    from wsrl.train import online

    def stopped(out, config, directories, on_start, fresh_episode):  # killed right after it started
        on_start()
        raise KeyboardInterrupt

    monkeypatch.setattr(online, "resume_online", stopped)
    assert main(["resume", str(out), "--steps", "80"]) == 130
    assert not (out / "summary.json").exists()
    assert json.loads((out / "config.json").read_text())["config"]["steps"] == 80
