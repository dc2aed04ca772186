"""Ray, for work that outgrows one machine: `wsrl compare --backend ray` runs each of its processes as a Ray task.

A task runs one wsrl command (the same arguments the local backend gives a process) as a `wsrl` process started by a
fresh Ray worker, which ends with it (`max_calls=1`). A worker (or node) that dies is retried by Ray; the retry stops
the process the dead worker left running, if any, and continues the run from its newest checkpoint
(`jobs.job_args`), so a comparison survives a lost node and ends with the results of an uninterrupted one. Run
directories are written where the command names them: with a cluster of several machines,
`--out` and the Minari root must be a path every node sees (a shared file system).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wsrl.errors import UserError
from wsrl.jobs import command, failure, job_args, job_log

RETRIES = 3  # of a task whose worker died
FORWARDED = ("JAX_", "XLA_", "MINARI_", "WANDB_", "CUDA_")  # the driver's settings every worker runs with


def require_ray(what: str = "--backend ray") -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(f"{what} needs Ray: pip install 'wsrl[ray]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nothing listens at (ray.init would retry for minutes)."""
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379, or ray://10.0.0.1:10001)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UserError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}): start one there with "
                        "`ray start --head`, or fix --address") from None


def worker_env() -> dict[str, str]:
    """The driver's environment variables that decide what a run computes or reads (XLA, JAX, Minari, W&B)."""
    return {k: v for k, v in os.environ.items()
            if k.startswith(FORWARDED) and k != "JAX_COMPILATION_CACHE_DIR"}  # a cache path is per machine


def connect(address: str = "") -> Any:
    """Connect to the Ray cluster at `address` ("auto": the one this machine belongs to; "": $RAY_ADDRESS, else a
    new one on this machine, ended with this process)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address and address != "auto":
        _check_reachable(address)
    if not (address or os.environ.get("RAY_ADDRESS")):
        # A cluster started here for this process: its workers do the work (the driver waits), so they run at the
        # driver's priority, not Ray's default nice 15, at which anything else on the machine starves them (a sweep
        # of 4 tiny trials beside two nice-10 processes on 2 cores: 273 s at nice 15, 44 s at 0).
        os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": worker_env()})
    except ConnectionError as e:
        raise UserError(f"cannot connect to Ray ({e}); start a cluster with `ray start --head`, or fix --address") \
            from None
    return ray


def _task(job: Any, log: str, *_after: None) -> None:
    """A Ray task: bring `job`'s run to its end (its own command, `resume`, or nothing) in a `wsrl` process of its
    own, the output into `log`. `_after`: the results of the tasks it waits for (Ray starts it once they have ended).

    The process's pid is kept beside the log while it runs. A retried task (its worker died) first stops the process
    an earlier attempt left running, if any (a child outlives its killed parent), so that no two processes ever write
    one run directory; only then does it decide how to continue."""
    pidfile = Path(log).with_suffix(".pid")
    _stop_leftover(pidfile, str(job.out))
    args = job_args(job)
    if args is None:
        return
    with open(log, "w") as f:
        process = subprocess.Popen(command(args), stdout=f, stderr=subprocess.STDOUT)
        pidfile.write_text(str(process.pid))
        try:
            returncode = process.wait()
        finally:  # the task cancelled or its worker stopped: the run checkpoints and exits
            if process.poll() is None:
                process.terminate()
                process.wait()
    pidfile.unlink(missing_ok=True)
    if returncode != 0:
        raise RuntimeError(f"`wsrl {' '.join(args)}` failed")


def _stop_leftover(pidfile: Path, out: str, patience: float = 120.0) -> None:
    """Stop the `wsrl` process writing `out` that `pidfile` names, if it still runs: SIGTERM (it checkpoints and
    exits), SIGKILL after `patience` seconds."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    if not _runs(pid, out):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + patience
    while _runs(pid, out) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _runs(pid, out):
        os.kill(pid, signal.SIGKILL)


def _runs(pid: int, out: str) -> bool:
    """Whether process `pid` is alive (not a zombie) and is the `wsrl` command writing `out` (not a reused pid)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return state != "Z" and out.encode() in cmdline


def run_jobs(jobs: list[Any], cpus: float, gpus: float) -> Iterator[Any]:
    """Run the compare jobs as Ray tasks with `cpus` / `gpus` each, a job's task once the task of the job it comes
    `after` has ended; yields each job as it ends. A worker's death retries the task (up to RETRIES times), and the
    retry resumes the run from its newest checkpoint."""
    ray = connect()
    task = ray.remote(max_calls=1)(_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=RETRIES,
                                                  retry_exceptions=False)
    refs, pending = {}, {}  # run directory -> its task (a job comes after the job it waits for); task -> job
    for job in jobs:
        ref = task.remote(job, str(job_log(job)), *([refs[job.after]] if job.after else []))
        refs[job.out], pending[ref] = ref, job
    try:
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready)
            try:
                ray.get(ready)
            except ray.exceptions.RayTaskError:
                raise failure(job.args, job_log(job)) from None
            except ray.exceptions.WorkerCrashedError:
                raise UserError(f"the Ray worker running {job.out} died {RETRIES + 1} times; see its log "
                                f"{job_log(job)} and Ray's (/tmp/ray/session_latest/logs)") from None
            yield job
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
