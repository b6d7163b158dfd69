"""What an experiment's command writes and records besides its results:
files replaced whole (never left half-written), the machine it ran on and
how busy that machine was, and the optional progress bar.

    with atomic_path(path) as tmp:   # write tmp; on success it becomes path
        torch.save(state, tmp)
    write_atomic(path, text)         # the same for a text file
    markdown(head, lines)            # a results.md table
"""

import contextlib
import os
import platform
from pathlib import Path

__all__ = [
    "atomic_path",
    "write_atomic",
    "loadavg",
    "cpu_name",
    "machine",
    "progress",
    "step_bar",
    "markdown",
]


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` (PATH.part, in the same folder,
    so that the rename stays on one file system); renames it onto `path`
    when the block ends without an exception. On an exception (a Ctrl-C, a
    crash mid-write) the temporary is removed and `path` keeps its previous
    complete contents."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path, text):
    """`text` into `path` (UTF-8) through atomic_path."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        f.write(text)


def loadavg():
    """The 1, 5 and 15 minute load averages, or None where the OS has none:
    other work on a shared machine slows every run, so a run records it."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def cpu_name():
    """The CPU's model name (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """What a run.json records of the software and the machine: torch's and
    fastrnn's versions, torch's threads, the architecture, the CPU model and
    the number of CPUs."""
    import torch

    import fastrnn

    return {
        "torch": torch.__version__,
        "fastrnn": fastrnn.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
    }


def progress(enabled):
    """tqdm's class when `enabled` and tqdm is installed, else None (the
    progress bar is optional)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def step_bar(tqdm, desc):
    """(bar, on_step) for chartrain.train: a bar over one epoch's steps,
    redrawn every 50 steps; (None, None) when tqdm is None."""
    if tqdm is None:
        return None, None
    bar = tqdm(desc=desc, unit="step", leave=False)

    def on_step(epoch, step, steps, loss):
        bar.total = steps
        bar.n = step + 1
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}", refresh=False)
        if step % 50 == 0 or step == steps - 1:
            bar.refresh()

    return bar, on_step


def markdown(head, lines):
    """A Markdown table: the column names `head`, then one row per sequence
    of cell strings in `lines`."""
    return "\n".join(
        ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        + ["| " + " | ".join(line) + " |" for line in lines]
    )
