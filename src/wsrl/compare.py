"""`wsrl compare`: pre-train once per (offline algorithm, seed), run every method on it, tabulate and plot.

Every run is an ordinary `wsrl pretrain` / `finetune` / `train` command in its own process (a local pool of
`--workers`), writing an ordinary run directory: by default one process per method (and per pre-training) runs all
its seeds together (`--seeds N`, run directories NAME/seedS/); with `--no-seeds-per-process`, one process per seed
(NAME_seedS/). Processes start in the order listed (the pre-trainings first), `--workers` at a time, each method's
as soon as the pre-training it starts from has ended: methods that need none (RLPD, SAC) do not wait for the others'.
A run whose summary.json exists when its turn comes is not run again, and one interrupted after a checkpoint continues
from it, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import csv
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from wsrl import rundir
from wsrl.config import flag_values, positive_flag
from wsrl.data.loaders import download, read_dataset
from wsrl.errors import Stopped, UserError
from wsrl.jobs import Job, command, failure, job_args, job_log
from wsrl.plots import mean_over_steps, plot_runs, read_run
from wsrl.presets import PRESETS, offline_preset, online_preset
from wsrl.presets.methods import METHODS
from wsrl.train.lifecycle import stop_signals

RESULT_COLUMNS = ("method", "seed", "score_start", "score_dip", "score_end", "auc", "regret", "run_dir")
DIP_WINDOW = 10_000  # the dip: the lowest evaluation in this many online steps after the warmup


@dataclass(frozen=True)
class Comparison:
    """Everything `wsrl compare` runs."""

    dataset: str
    methods: tuple[str, ...]
    seeds: int
    steps: int
    offline_steps: int
    out: Path
    preset: str = "locomotion"
    env: str = ""
    workers: int = 1
    seeds_per_process: bool = True
    extra_flags: tuple[str, ...] = ()  # passed to every run whose config has them
    download: bool = False  # fetch the dataset from Minari's remote first
    backend: str = "local"  # or "ray"
    address: str = ""  # of a Ray cluster ("": start one on this machine, or $RAY_ADDRESS)
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    first_seed: int = 0  # the seeds are first_seed .. first_seed + seeds - 1

    def validate(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UserError(f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(METHODS)}")
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of {', '.join(sorted(PRESETS))}")
        if min(self.seeds, self.steps, self.offline_steps, self.workers) < 1:
            raise UserError("--seeds, --steps, --offline-steps and --workers must be positive integers")
        if self.first_seed < 0:
            raise UserError(f"--first-seed must be >= 0, got {self.first_seed}")
        if self.cpus_per_run <= 0 or self.gpus_per_run < 0:
            raise UserError(f"--cpus-per-run must be positive and --gpus-per-run not negative (got "
                            f"{self.cpus_per_run}, {self.gpus_per_run})")
        runs = [*self.pretrain_configs().values(), *self.method_configs().values()]
        groups = flag_groups(self.extra_flags)
        for token, *_ in groups:
            flag, _, name = token.partition("@")
            if name and name not in self.methods:
                raise UserError(f"{token}: {name!r} is not one of --methods {','.join(self.methods)}")
            if name and not config_flag(flag, flag_values(self.method_configs()[name])):
                raise UserError(f"{token}: method {name} has no flag {flag} (see `wsrl finetune --method {name} "
                                "--help`)")
        unknown = [g[0] for g in groups
                   if "@" not in g[0] and not any(config_flag(g[0], flag_values(config)) for config in runs)]
        if unknown:
            raise UserError(f"unknown flag(s) {', '.join(unknown)} (see `wsrl compare --help`, `wsrl finetune "
                            "--help`)")
        base = flag_values(online_preset(self.preset))
        for token, *_ in groups:
            if "@" in token:  # set for that method alone, by name
                continue
            flag = config_flag(token, base) or token
            clashing = [m for m, config in self.method_configs().items()
                        if flag in base and flag_values(config).get(flag, base[flag]) != base[flag]]
            if clashing:
                raise UserError(f"{token} would override what --methods {', '.join(clashing)} set; drop it (each "
                                f"method's settings are part of what is compared), or set it for one method with "
                                f"{token}@METHOD")

    def pretrain_configs(self) -> dict[str, object]:
        """Offline algorithm -> its pre-training config, for every algorithm the methods start from."""
        return {algo: offline_preset(self.preset, algo) for algo in sorted(
            {pretrained_by(self, m) for m in self.methods if METHODS[m].from_checkpoint})}

    def method_configs(self) -> dict[str, object]:
        return {m: METHODS[m].apply(online_preset(self.preset)) for m in self.methods}

    def flags_for(self, config: object, method: str | None = None) -> list[str]:
        """The pass-through flags (with their values) that `config` has; `--FLAG@METHOD` ones for `method` alone."""
        known, chosen = flag_values(config), []
        for flag, *values in flag_groups(self.extra_flags):
            flag, _, only = flag.partition("@")
            if (not only or only == method) and config_flag(flag, known):
                chosen += [flag, *values]
        return chosen


def config_flag(token: str, known: dict[str, object]) -> str | None:
    """The flag of `known` that command-line flag `token` sets (`--no-X` sets the boolean `--X`), or None."""
    if token in known:
        return token
    flag = positive_flag(token)
    return flag if flag != token and isinstance(known.get(flag), bool) else None


def flag_groups(tokens: tuple[str, ...]) -> list[list[str]]:
    """['--a', '1', '--b', '2', '3'] -> [['--a', '1'], ['--b', '2', '3']]."""
    groups: list[list[str]] = []
    for token in tokens:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


class Processes:
    """The local processes of a comparison's jobs. Once stopped, each running one is sent SIGTERM (it checkpoints
    and exits) and no new one starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: list[subprocess.Popen] = []
        self._stopped = False

    def run(self, command: list[str], log: IO) -> int | None:
        """`command`'s exit status, its output into `log`; None if the comparison was stopped before it started."""
        with self._lock:
            if self._stopped:
                return None
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            self._started.append(process)
        return process.wait()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for process in self._started:
                process.terminate()  # a no-op for one that has ended (Popen polls first)


def _execute(job: Job, processes: Processes) -> None:
    """Run one job in a local process; a failure stops the comparison with its reason."""
    args = job_args(job)
    if args is None:
        return
    log = job_log(job)
    with open(log, "w") as f:
        returncode = processes.run(command(args), f)
    if returncode not in (0, None):
        raise failure(args, log)


def dataset_env(dataset: str) -> str:
    """The environment a dataset names in its metadata (every run of a comparison acts in it)."""
    env_id = read_dataset(dataset).env_id
    if not env_id:
        raise UserError(f"dataset {dataset} names no environment; pass --env ENV_ID")
    return env_id


def pretrained_by(c: Comparison, method: str) -> str:
    """The offline algorithm a method starts from: the one it continues, else the preset's own."""
    continued = METHODS[method].apply(online_preset(c.preset)).continued
    return continued.algo if continued is not None else PRESETS[c.preset].DEFAULT_ALGO


def _jobs(c: Comparison, parent: Path, name: str) -> list[tuple[Path, tuple[int, ...]]]:
    """(run directory, its seeds) of each process running `name`'s seeds."""
    seeds = tuple(range(c.first_seed, c.first_seed + c.seeds))
    if c.seeds_per_process:
        return [(parent / name, seeds)]
    return [(parent / f"{name}_seed{seed}", (seed,)) for seed in seeds]


def pretrain_jobs(c: Comparison) -> dict[str, list[Job]]:
    """Offline algorithm -> the pre-training processes of its seeds."""
    env = ["--env", c.env or dataset_env(c.dataset)]
    return {algo: [Job(("pretrain", "--dataset", c.dataset, "--preset", c.preset, "--algo", algo, "--steps",
                        str(c.offline_steps), "--seed", str(seeds[0]), "--seeds", str(len(seeds)), "--out", str(out),
                        "--overwrite", *env, *c.flags_for(config)), out, seeds)
                   for out, seeds in _jobs(c, c.out / "pretrain", algo)]
            for algo, config in c.pretrain_configs().items()}


def method_jobs(c: Comparison, pretrained: dict[str, list[Job]]) -> dict[str, list[Job]]:
    """Method -> the processes of its seeds, each starting from the pre-training process of the same seeds."""
    env = ["--env", c.env or dataset_env(c.dataset)]
    jobs = {}
    for name in c.methods:
        config = c.method_configs()[name]
        jobs[name] = []
        for i, (out, seeds) in enumerate(_jobs(c, c.out / "runs", name)):
            after = pretrained[pretrained_by(c, name)][i].out if METHODS[name].from_checkpoint else None
            start = ["finetune", "--from", str(after)] if after else ["train"]
            retain = ["--dataset", c.dataset] if config.retention is not None else []
            jobs[name].append(Job((*start, "--method", name, "--preset", c.preset, "--steps", str(c.steps),
                                   "--seed", str(seeds[0]), "--seeds", str(len(seeds)), "--out", str(out),
                                   "--overwrite", *env, *retain, *c.flags_for(config, name)), out, seeds, after))
    return jobs


def _local(jobs: list[Job], workers: int) -> Iterator[Job]:
    """Run the jobs in local processes, `workers` at a time, each as soon as a worker is free and the job it
    comes `after` has ended, the first such in `jobs`' order; yields each as it ends. A failure cancels the jobs
    not started yet (those running end first). SIGINT or SIGTERM stops the comparison: the running processes
    checkpoint and end, then `Stopped` is raised; the same command run again resumes."""
    processes = Processes()
    waiting, ended = list(jobs), set()
    with stop_signals() as request, ThreadPoolExecutor(workers) as pool:
        pending = {}

        def start_ready() -> None:
            for job in [job for job in waiting if job.after is None or job.after in ended][:workers - len(pending)]:
                waiting.remove(job)
                pending[pool.submit(_execute, job, processes)] = job

        start_ready()
        try:
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                if request.signal is not None:
                    processes.stop()
                    pool.shutdown(cancel_futures=True)  # waits for the running processes to end
                    raise Stopped(request.exit_code, "comparison stopped; its running runs wrote checkpoints: "
                                  "run the same command again to resume it")
                for future in done:
                    future.result()
                finished = [pending.pop(future) for future in done]
                ended.update(job.out for job in finished)
                start_ready()
                yield from finished
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _run_all(c: Comparison, jobs: list[Job]) -> None:
    """Every job to its end (local processes, or Ray tasks with --backend ray), a line as each ends."""
    if c.backend == "ray":
        from wsrl.cluster import run_jobs

        done = run_jobs(jobs, c.cpus_per_run, c.gpus_per_run)
    else:
        done = _local(jobs, c.workers)
    for k, job in enumerate(done, 1):
        print(f"[{k}/{len(jobs)}] {job.out}: done", flush=True)


def run_comparison(c: Comparison) -> list[dict]:
    """Pre-train, run all methods x seeds, then write results.csv and comparison.png into c.out."""
    c.validate()
    if c.backend == "ray":  # before anything is written: an unreachable cluster is bad input
        from wsrl.cluster import connect

        connect(c.address)
    if c.download:
        download(c.dataset)
    pretrained = pretrain_jobs(c)
    methods = method_jobs(c, pretrained)
    _run_all(c, [job for group in (pretrained, methods) for jobs in group.values() for job in jobs])
    results = [result_row(name, seed, job.run_dir(seed))
               for name, jobs in methods.items() for job in jobs for seed in job.seeds]
    with open(c.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(results)
    plot_runs([r["run_dir"] for r in results], c.out / "comparison.png",
              title=f"{c.dataset}: {c.seeds} seed(s), {c.steps} online steps", labels=[r["method"] for r in results])
    return results


def result_row(method: str, seed: int, run_dir: Path) -> dict:
    """Score at the start and end of fine-tuning, the dip (the lowest evaluation in the first `DIP_WINDOW` online
    steps after the warmup: K < step <= K + DIP_WINDOW), the area under the curve, and the regret on goal tasks."""
    run = read_run(run_dir)
    x, y = run[run["score_key"]]
    auc = mean_over_steps(x, y)
    after_warmup = (x > run["warmup"]) & (x <= run["warmup"] + DIP_WINDOW)
    dip = float(y[after_warmup].min()) if after_warmup.any() else ""
    summary = rundir.read_summary(run_dir)
    regret = ""
    if (len(run["eval_success"][0]) or len(run["train_success"][0])) and summary.get("train_episodes"):
        regret = 1.0 - summary["train_successes"] / summary["train_episodes"]
    return {"method": method, "seed": seed, "score_start": float(y[0]), "score_dip": dip, "score_end": float(y[-1]),
            "auc": auc, "regret": regret, "run_dir": str(run_dir)}


SUMMARY_COLUMNS = {"score_start": "score at start", "score_dip": "dip (lowest in 10k after warmup)",
                   "score_end": "score at end", "auc": "area under curve", "regret": "regret"}


def summary_table(results: list[dict]) -> list[tuple[str, ...]]:
    """Per method: mean +- std over seeds of each result column."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in results):
        mine = [r for r in results if r["method"] == method]
        cells = [method, str(len(mine))]
        for key in SUMMARY_COLUMNS:
            values = [r[key] for r in mine if r[key] != ""]
            cells.append(f"{np.mean(values):.2f} ± {np.std(values):.2f}" if values else "-")
        rows.append(tuple(cells))
    return rows
