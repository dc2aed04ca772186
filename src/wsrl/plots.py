"""Learning curves from run directories: evaluation vs steps with bootstrap bands over seeds, Q diagnostics."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wsrl import rundir  # noqa: E402
from wsrl.errors import UserError  # noqa: E402

SEED_SUFFIX = re.compile(r"[-_]?seed[-_]?\d+$")


def run_label(run_dir: Path) -> str:
    """Runs whose directory names differ only by a trailing seed share a label (and a curve); a seed of a
    multi-seed run (RUN/seedS) is labelled by its run (RUN)."""
    return SEED_SUFFIX.sub("", run_dir.name) or run_dir.parent.name


def read_run(run_dir: Path) -> dict:
    """Evaluation points and training-metric points of one run directory."""
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        raise UserError(f"{run_dir} has no metrics.csv; give run directories written by wsrl")
    config = rundir.read_config(run_dir)
    try:
        with open(metrics, newline="") as f:
            rows = list(csv.DictReader(f))
        offline = bool(rows) and all(r["phase"] == "offline" for r in rows)
        x_key = "grad_step" if offline else "env_step"

        def series(key: str) -> tuple[np.ndarray, np.ndarray]:
            points = [(float(r[x_key]), float(r[key])) for r in rows if r.get(key)]
            return (np.array([p[0] for p in points]), np.array([p[1] for p in points])) if points else (
                np.zeros(0), np.zeros(0))

        curves = {k: series(k) for k in ("eval_return", "eval_normalized_score", "eval_success", "q_mean",
                                         "train_return", "train_success")}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{metrics}: unreadable ({type(e).__name__}: {e}); the run directory is damaged") from None
    run = {"label": run_label(run_dir), "x_key": x_key, "warmup": 0 if offline else config.get("warmup_steps", 0),
           **curves}
    return {**run, "score_key": score_key(run, bool(config.get("binary_reward")))}


SCORE_NAMES = {"eval_success": "success rate", "eval_normalized_score": "normalised score",
               "eval_return": "evaluation return", "train_return": "return of the training episodes",
               "train_success": "success rate of the training episodes"}


def score_key(run: dict, binary_reward: bool) -> str:
    """The one place a run's score is chosen: the success rate on binary-reward tasks (Adroit binary: the paper's
    measure; their return only counts steps), else the normalised score where the task has reference returns, else
    the evaluation return; for a run without evaluation rollouts, its training episodes' success rate or return."""
    if not len(run["eval_return"][0]) and len(run["train_return"][0]):  # no evaluation rollouts (--eval-episodes 0)
        return "train_success" if binary_reward and len(run["train_success"][0]) else "train_return"
    if binary_reward and len(run["eval_success"][0]):
        return "eval_success"
    return "eval_normalized_score" if len(run["eval_normalized_score"][0]) else "eval_return"


def mean_over_steps(x: np.ndarray, y: np.ndarray) -> float:
    """The area under a learning curve divided by its length (the trapezoid rule): its mean over steps."""
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if len(x) > 1 else float(y[-1])


def bootstrap_band(values: np.ndarray, rng: np.random.Generator, samples: int = 1000) -> tuple[np.ndarray, ...]:
    """Mean over seeds (axis 0) and its 95% bootstrap confidence interval, per x."""
    mean = values.mean(axis=0)
    if len(values) < 2:
        return mean, mean, mean
    idx = rng.integers(0, len(values), (samples, len(values)))
    means = values[idx].mean(axis=1)
    return mean, np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)


def _curves(runs: list[dict], key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (x, values of shape (seeds, x)), on the x points every seed of the label has."""
    grouped: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for run in runs:
        if len(run[key][0]):
            grouped[run["label"]].append(run[key])
    out = {}
    for label, series in grouped.items():
        common = sorted(set.intersection(*(set(x.tolist()) for x, _ in series)))
        values = np.array([[dict(zip(x.tolist(), y.tolist(), strict=True))[c] for c in common] for x, y in series])
        out[label] = (np.array(common), values)
    return out


def mark_warmups(ax: plt.Axes, warmups: dict[str, int], colors: dict[str, str]) -> None:
    """One shared warmup: a grey band. Warmups that differ (WSRL's K beside RLPD's random steps): a dotted line in
    each run's colour where its warmup ends, so that no run's updates appear to start before they do."""
    lengths = set(warmups.values())
    if lengths == {0}:
        return
    if len(lengths) == 1:
        ax.axvspan(0, lengths.pop(), color="grey", alpha=0.15, label="warmup")
        return
    for label, length in warmups.items():
        if length:
            ax.axvline(length, color=colors[label], linestyle=":", linewidth=1.2)
    ax.plot([], [], color="grey", linestyle=":", label="end of warmup")  # the legend's entry for those lines


def plot_runs(run_dirs: list[str | Path], out: str | Path, title: str | None = None,
              labels: list[str] | None = None) -> Path:
    """Write a PNG of evaluation curves (and success rate and mean Q when logged) for `run_dirs`.

    `labels` (one per run) replaces the labels derived from the directory names.
    """
    runs = [read_run(Path(d)) for d in run_dirs]
    for run, label in zip(runs, labels or [], strict=False):
        run["label"] = label
    offline = [str(d) for d, r in zip(run_dirs, runs, strict=True) if r["x_key"] == "grad_step"]
    if offline and len(offline) < len(runs):
        raise UserError(f"cannot plot pre-training runs (x: gradient steps) and online runs (x: env steps) on one "
                        f"axis: {', '.join(offline)} pre-trained; plot them separately")
    keys = {r["score_key"] for r in runs}
    if len({k.startswith("train_") for k in keys}) > 1:
        raise UserError("cannot plot runs scored by evaluation rollouts and runs scored by their training episodes "
                        "(--eval-episodes 0) on one axis; plot them separately")
    key = keys.pop() if len(keys) == 1 else "eval_return"
    panels = [(key, SCORE_NAMES[key])]
    success = "train_success" if key.startswith("train_") else "eval_success"
    if key != success and any(len(r[success][0]) for r in runs):
        panels.append((success, SCORE_NAMES[success]))
    if any(len(r["q_mean"][0]) for r in runs):
        panels.append(("q_mean", "mean Q on sampled batch"))
    if not any(len(r[key][0]) for r in runs):
        raise UserError("none of the runs logged an evaluation; nothing to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    rng = np.random.default_rng(0)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {label: cycle[i % len(cycle)] for i, label in enumerate(dict.fromkeys(r["label"] for r in runs))}
    for ax, (key, name) in zip(axes[0], panels, strict=True):
        for label, (x, values) in _curves(runs, key).items():
            color = colors[label]
            mean, low, high = bootstrap_band(values, rng)
            ax.plot(x, mean, color=color, label=f"{label} (n={len(values)})", marker="o" if len(x) < 30 else None,
                    markersize=3)
            ax.fill_between(x, low, high, color=color, alpha=0.2)
        mark_warmups(ax, {r["label"]: r["warmup"] for r in runs}, colors)
        ax.set_xlabel("gradient steps" if runs[0]["x_key"] == "grad_step" else "online env steps")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
