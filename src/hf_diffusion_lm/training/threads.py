"""CPU threads for a launched run.

`accelerate launch` without `use_cpu` in its config (the front door, `accelerate launch recipes/train.py`, on a machine
without a GPU) sets OMP_NUM_THREADS=1 for its child unless the caller set it: training then runs on one core
(measured: half speed on 2 cores). A run corrects that by sharing the cores among the processes on its machine.
"""

import os
from pathlib import Path


def launcher_environment() -> dict[str, str] | None:
    """The environment the launching process started with (Linux), or None when it cannot be read."""
    try:
        entries = Path(f"/proc/{os.getppid()}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return dict(entry.decode(errors="replace").split("=", 1) for entry in entries if b"=" in entry)


def cpu_threads_per_process(environ, launcher_environ, num_cores: int) -> int | None:
    """The threads this process should use, or None to leave torch's setting alone.

    Only a one-thread limit that `accelerate launch` set on its own is lifted: OMP_NUM_THREADS=1 in this process,
    set by an accelerate launcher (ACCELERATE_USE_CPU is in the environment), while the launcher itself had no
    OMP_NUM_THREADS. A value the user set is kept.
    """
    if environ.get("OMP_NUM_THREADS") != "1" or "ACCELERATE_USE_CPU" not in environ:
        return None
    if launcher_environ is not None and "OMP_NUM_THREADS" in launcher_environ:
        return None
    local_processes = int(environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, num_cores // local_processes)


def use_the_cores() -> int:
    """Apply `cpu_threads_per_process` to torch (and to worker processes through OMP_NUM_THREADS); returns the
    number of threads torch uses."""
    import torch

    threads = None
    if not torch.cuda.is_available():
        threads = cpu_threads_per_process(os.environ, launcher_environment(), len(os.sched_getaffinity(0)))
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    return torch.get_num_threads()
