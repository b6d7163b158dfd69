"""Busy processes beside the benchmark (`--load N`): a shared machine, made on
purpose.

fastrnn splits each step's work across its threads and waits for all of them
at the end of the step; when another process takes a thread's core, every
step waits for that descheduled thread, and the training step can fall below
torch.nn's (issue 14). `--load N` runs N processes that each keep one core
busy for the whole run, so that this case is measured rather than met by
chance; the `busy` column then shows about N cores' worth of other work.
"""

import contextlib
import subprocess
import sys

# One CPU-bound loop. It says when it starts (so that the first case sees the
# load), ignores Ctrl-C (the benchmark, which gets it too, stops it), and
# every million iterations looks whether its parent is still the benchmark:
# if the benchmark was killed (no `finally` runs then), it stops by itself
# instead of spinning on as an orphan.
SPIN = """\
import os, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
parent = os.getppid()
print("spinning", flush=True)
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
"""


@contextlib.contextmanager
def busy_processes(n):
    """Run `n` busy processes while the `with` block runs; yields their
    subprocess.Popen objects, once every one is spinning. They are killed and
    reaped when the block ends, normally or by an exception (KeyboardInterrupt
    included)."""
    if n < 0:
        raise ValueError(f"the number of busy processes must be at least 0, not {n}")
    procs = []
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", SPIN],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for p in procs:
            if p.stdout.readline() != "spinning\n":
                raise RuntimeError(f"a busy process did not start (exit status {p.wait()})")
            p.stdout.close()
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
