"""The leaderboard's file lock really excludes other writers (issue 19: a no-op lock passed the old concurrency test,
because single O_APPEND writes do not interleave anyway; what the lock protects is the header creation and the
partial-row repair, which only a held lock keeps one writer at a time)."""

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from zoo.leaderboard import COLUMNS, append_rows, read_rows

REPO = Path(__file__).resolve().parents[1]

# The child prints "ready" just before it calls append_rows, so the parent's wait below starts after its imports.
CHILD = """
import sys
from zoo.leaderboard import COLUMNS
row = {k: "" for k in COLUMNS}
row.update(model="child", metric="fvd", value="1.5", num_real="2", num_fake="2")
print("ready", flush=True)
from zoo.leaderboard import append_rows
append_rows(sys.argv[1], [row])
print("done", flush=True)
"""


def _row(name: str) -> dict:
    row = {k: "" for k in COLUMNS}
    row.update(model=name, metric="fvd", value="2.5", num_real="2", num_fake="2")
    return row


def test_append_waits_while_another_process_holds_the_lock(tmp_path):
    """Hold the lock here; a writer in another process must not touch the file until it is released. With the lock
    replaced by a no-op the child writes within milliseconds of 'ready' and the file appears."""
    path = tmp_path / "leaderboard.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    lock = FileLock(str(path) + ".lock")
    with lock:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 3.0  # far longer than an unlocked append takes, however busy the machine
            while time.monotonic() < deadline and child.poll() is None and not path.exists():
                time.sleep(0.05)
            assert child.poll() is None, "the child finished its append while this process held the lock"
            assert not path.exists(), "the child wrote the leaderboard while this process held the lock"
        except BaseException:
            child.kill()
            raise
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip() == "done"
    assert [r["model"] for r in read_rows(path)] == ["child"]


def test_lock_is_held_while_the_rows_are_formatted(tmp_path):
    """Deterministic in-process probe: while append_rows builds its text, a fresh flock on the lock file fails."""
    path = tmp_path / "leaderboard.csv"
    probes = []

    class Probe(dict):
        def get(self, key, default=None):
            if not probes:
                with open(str(path) + ".lock", "a") as f:
                    try:
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        probes.append("held")
                    else:
                        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                        probes.append("free")
            return super().get(key, default)

    append_rows(path, [Probe(_row("a"))])
    assert probes == ["held"]
    assert [r["model"] for r in read_rows(path)] == ["a"]
