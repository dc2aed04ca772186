"""Ray, for work that outgrows one machine: `wsrl compare --backend ray` runs each of its processes as a Ray task.

A task runs one wsrl command (the same arguments the local backend gives a process) in a fresh Ray worker process,
which ends with it (`max_calls=1`). A worker (or node) that dies is retried by Ray, and the retry continues the run
from its newest checkpoint (`jobs.job_args`), so a comparison survives a lost node and ends with the results of an
uninterrupted one. Run directories are written where the command names them: with a cluster of several machines,
`--out` and the Minari root must be a path every node sees (a shared file system).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
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
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": worker_env()})
    except ConnectionError as e:
        raise UserError(f"cannot connect to Ray ({e}); start a cluster with `ray start --head`, or fix --address") \
            from None
    return ray


def _task(job: Any, log: str, *_after: None) -> None:
    """A Ray task: bring `job`'s run to its end (its own command, `resume`, or nothing) in this fresh worker
    process, the output into `log`. `_after`: the results of the tasks it waits for (Ray starts it once they
    have ended)."""
    args = job_args(job)
    if args is None:
        return
    with open(log, "w") as f:
        # The run dies with this worker (as it did when it ran in the worker's process), so that Ray's retry
        # never meets it still running; a cancelled task stops it with SIGTERM (it checkpoints and exits).
        process = subprocess.Popen(command(args), stdout=f, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent())
        try:
            returncode = process.wait()
        finally:  # the task cancelled or its worker stopped: the run checkpoints and exits
            if process.poll() is None:
                process.terminate()
                process.wait()
    if returncode != 0:
        raise RuntimeError(f"`wsrl {' '.join(args)}` failed")


def _die_with_parent() -> Any:
    """A `preexec_fn` that has the child killed (SIGKILL) when the process that started it dies (Linux's
    PR_SET_PDEATHSIG; elsewhere None). The libc function is looked up before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


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
