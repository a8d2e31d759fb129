"""Turn-taking on a DuckDB file (backends/lock.py): one flock per process, shared by its threads."""

from __future__ import annotations

import fcntl
import threading
import time
from types import SimpleNamespace

import pytest

from pqlkit.backends import lock as lock_module
from pqlkit.backends.lock import FileLock
from pqlkit.errors import BackendError


def _other_process_holds(db) -> object:
    """The flock taken on its own open file, as another process takes it (flock conflicts
    between open files, not between processes)."""
    fh = open(f"{db}.lock", "a+b")  # noqa: SIM115
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fh


def test_threads_of_one_process_share_the_lock(tmp_path):
    db = tmp_path / "d.duckdb"
    first = FileLock.take(str(db), wait=1)
    second = FileLock.take(str(db), wait=1)
    assert not first.sole()
    second.close()
    assert first.sole()
    first.close()


def test_another_process_holding_the_file_is_waited_for_then_named(tmp_path):
    db = tmp_path / "d.duckdb"
    other = _other_process_holds(db)
    try:
        started = time.monotonic()
        with pytest.raises(
            BackendError, match=r"in use by another pqlkit process.*PQL_LOCK_TIMEOUT"
        ):
            FileLock.take(str(db), wait=0.3)
        assert time.monotonic() - started >= 0.3
    finally:
        other.close()
    FileLock.take(str(db), wait=0.3).close()  # free again once the other lets go


def test_a_waiting_thread_joins_the_lock_another_thread_of_its_process_took_meanwhile(
    tmp_path, monkeypatch
):
    """Thread B waits while another process holds the file; the other lets go and thread A of
    B's process takes the flock first. B must join A's lock, not wait for A to close it (which,
    for a long-lived connection such as `pql ui`'s, means waiting out PQL_LOCK_TIMEOUT)."""
    db = tmp_path / "d.duckdb"
    waiting, a_took = threading.Event(), threading.Event()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:  # B's backoff: hold B here until A has the lock
        waiting.set()
        a_took.wait(5)
        real_sleep(seconds)

    monkeypatch.setattr(
        lock_module,
        "time",
        SimpleNamespace(
            monotonic=time.monotonic, sleep=sleep, time=time.time, time_ns=time.time_ns
        ),
    )
    other = _other_process_holds(db)
    got: list[object] = []

    def b() -> None:
        try:
            got.append(FileLock.take(str(db), wait=3))
        except BackendError as exc:
            got.append(exc)

    thread = threading.Thread(target=b)
    thread.start()
    assert waiting.wait(5), "B never waited on the other process"
    other.close()
    a = FileLock.take(str(db), wait=0)  # A: free now, so A gets the flock on its own file
    a_took.set()
    started = time.monotonic()
    thread.join(5)
    try:
        assert isinstance(got[0], FileLock), got[0]
        assert time.monotonic() - started < 1.5, "B waited for A to close instead of joining"
        assert not a.sole()
        got[0].close()
        assert a.sole()
    finally:
        a.close()
    FileLock.take(str(db), wait=0).close()  # the flock went with the last close


BUSY = """
import sys, threading, time
from pqlkit.backends.lock import FileLock
db, stop = sys.argv[1], time.monotonic() + float(sys.argv[2])
def work():
    while time.monotonic() < stop:
        held = FileLock.take(db, wait=30)
        time.sleep(0.05)  # a page's queries
        held.close()
threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads: t.start()
print("busy", flush=True)
for t in threads: t.join()
"""


def test_a_process_whose_threads_overlap_does_not_starve_another(tmp_path):
    """Three threads of another process open and close connections back to back, always at
    least one open (a web app under a steady stream of pages): without the queue its flock
    never falls free and this process waited its whole PQL_LOCK_TIMEOUT. With it, this process
    is served within moments, and the busy one goes on afterwards."""
    import subprocess
    import sys

    db = tmp_path / "d.duckdb"
    busy = subprocess.Popen(
        [sys.executable, "-c", BUSY, str(db), "8"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert busy.stdout is not None and busy.stdout.readline().strip() == "busy"
        time.sleep(0.5)
        for _ in range(3):
            started = time.monotonic()
            held = FileLock.take(str(db), wait=6)
            waited = time.monotonic() - started
            time.sleep(0.2)
            held.close()
            assert waited < 2.0, f"waited {waited:.1f} s for a turn"
            time.sleep(0.3)
    finally:
        busy.wait(30)
        if busy.stdout is not None:
            busy.stdout.close()
    assert busy.returncode == 0


def test_a_ticket_its_waiter_left_behind_blocks_no_one(tmp_path):
    """A waiter killed in the queue leaves its ticket; the pid in its name may belong to a
    live process now (pid 1 always does: a container's `pql serve`). Nobody holds the ticket's
    flock, so it is stale: removed, and the file is taken at once."""
    db = tmp_path / "d.duckdb"
    stale = tmp_path / "d.duckdb.lock.want.00000000000000000001.1.0"
    stale.touch()
    started = time.monotonic()
    FileLock.take(str(db), wait=2).close()
    assert time.monotonic() - started < 1.0
    assert not stale.exists()
    assert not FileLock.wanted_elsewhere(str(db))


def test_a_connection_closed_on_another_thread_leaves_its_openers_count(tmp_path):
    """The web app opens its warm connection on a request's thread and lets it go from its
    keeper's: the opener's count must fall, or that thread would join the lock past another
    process's ticket for ever after."""
    db = tmp_path / "d.duckdb"
    held: list[FileLock] = []
    opener = threading.Thread(target=lambda: held.append(FileLock.take(str(db), wait=1)))
    opener.start()
    opener.join()
    closer = threading.Thread(target=held[0].close)
    closer.start()
    closer.join()
    assert held[0]._owner.get(held[0].path) == 0
    assert FileLock._held.get(held[0].path) is None  # the flock is free again
