"""The collector's flusher in a process of its own (or, beside the web app on a DuckDB file, in
a thread of the server's: :class:`FlusherThread`).

`pql serve` answers HTTP in one process and stores into the database in another, so storing
(parsing messages again, identities, DuckDB inserts) never takes CPU time from acknowledging
requests; the flusher runs at a lower priority and catches up when the load drops. The two
share a few numbers in shared memory: the position the log has made durable (the flusher
reads no further), the flusher's counters, its last error, and a stop flag. If the HTTP
process dies, the flusher stores what is durable and exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_OFFSET_BITS = 40  # a segment offset below 1 TiB; segment and offset packed in one 64-bit value


class SharedState:
    """Numbers the HTTP process and the flusher process share."""

    def __init__(self, ctx: Any):
        self.durable = ctx.Value("q", 0, lock=False)  # one 64-bit word: read and written whole
        self.stored = ctx.Value("q", 0, lock=False)
        self.duplicates = ctx.Value("q", 0, lock=False)
        self.suppressed = ctx.Value("q", 0, lock=False)
        self.quarantined = ctx.Value("q", 0, lock=False)  # log lines that could not be stored
        self.fast_lines = ctx.Value("q", 0, lock=False)  # log lines the fast path stored
        self.reference_lines = ctx.Value("q", 0, lock=False)  # and the reference path
        self.stored_segment = ctx.Value(
            "q", 0, lock=False
        )  # the log segment the database has reached
        self.stored_at = ctx.Value("q", 0, lock=False)  # the log position stored, packed
        self.error = ctx.Array("c", 1024, lock=False)
        self.failing_since = ctx.Value("d", 0.0, lock=False)  # wall clock; 0: storing works
        self.live = ctx.Array("c", 4096, lock=False)  # live scoring's counters, as JSON
        self.tracking = ctx.Array("c", 16384, lock=False)  # the volume watch's statuses, JSON
        self.ready = ctx.Event()
        self.stop = ctx.Event()

    def publish(self, segment: int, offset: int) -> None:
        self.durable.value = (segment << _OFFSET_BITS) | offset

    def position(self) -> tuple[int, int]:
        packed = self.durable.value
        return packed >> _OFFSET_BITS, packed & ((1 << _OFFSET_BITS) - 1)

    def stored_position(self) -> tuple[int, int]:
        """How far the database holds the log (the log deletes closed segments before it)."""
        packed = self.stored_at.value
        return packed >> _OFFSET_BITS, packed & ((1 << _OFFSET_BITS) - 1)

    def backlog_segments(self) -> int:
        """How many log segments are durable but not stored yet (the flusher's lag)."""
        return max(0, self.position()[0] - max(self.stored_segment.value, 1))  # segments start at 1

    def set_error(self, exc: BaseException | None) -> None:
        text = b"" if exc is None else f"{type(exc).__name__}: {exc}".encode()[:1023]
        self.error.value = text
        if exc is None:
            self.failing_since.value = 0.0
        elif not self.failing_since.value:
            self.failing_since.value = time.time()

    def failing_for(self) -> float:
        """Seconds storing has been failing without a success in between (0: it works)."""
        since = self.failing_since.value
        return max(0.0, time.time() - since) if since else 0.0

    def set_live(self, stats: dict[str, Any]) -> None:
        import json

        self.live.value = json.dumps(stats, default=str).encode()[:4095]

    def live_stats(self) -> dict[str, Any] | None:
        import json

        text = self.live.value.decode(errors="replace")
        return json.loads(text) if text else None

    def set_tracking(self, stats: dict[str, Any]) -> None:
        import json

        text = json.dumps(stats, default=str).encode()
        if len(text) > 16383:  # too many events to list: the totals only, still valid JSON
            stats = {k: v for k, v in stats.items() if k != "events"}
            text = json.dumps({**stats, "events_omitted": True}, default=str).encode()
        self.tracking.value = text

    def tracking_stats(self) -> dict[str, Any] | None:
        import json

        text = self.tracking.value.decode(errors="replace")
        return json.loads(text) if text else None

    def error_text(self) -> str | None:
        text = self.error.value.decode(errors="replace")
        return text or None


def flusher_main(
    url: str,
    log_dir: str,
    table: str,
    interval: float,
    resolve_interval: float,
    hold: bool,
    state: SharedState,
    parent: int,
    subscriber: Callable[[], Any] | None = None,
) -> None:
    """The flusher process's body. ``subscriber`` (picklable: it crosses into this process)
    makes what the flusher tells of each stored batch, e.g. live scoring.

    It ignores SIGTERM and SIGINT: a service manager signals the whole group, and the server
    process drains first, then sets ``state.stop``, and the flusher stores what is left and
    records what was sent before it exits (a parent that dies is noticed too)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .. import logs

    logs.setup()  # as the server's process does (the format comes in the environment)
    serve_log(url, log_dir, table, interval, resolve_interval, hold, state, subscriber,
              lambda: state.stop.is_set() or os.getppid() != parent)  # fmt: skip


def serve_log(
    url: str,
    log_dir: str,
    table: str,
    interval: float,
    resolve_interval: float,
    hold: bool,
    state: SharedState,
    subscriber: Callable[[], Any] | None,
    stop: Callable[[], bool],
    nice: bool = True,
) -> None:
    """Store the log into the database until ``stop()``: the flusher's work, in its own
    process (``nice``: lowered in priority) or in a thread of the server's
    (:class:`FlusherThread`, not lowered: it shares the interpreter's lock with the web app's
    pages, and lowered on a busy machine it waited behind them, event to webhook p50 4.4 s
    against 2.1 s)."""
    from .. import logs
    from ..backends import connect
    from .log import LogReader
    from .store import Flusher

    log = logs.get("flusher")
    if nice:
        with contextlib.suppress(OSError):
            os.nice(10)  # acknowledging requests comes first
    try:
        live = subscriber() if subscriber is not None else None
        flusher = Flusher(
            lambda: connect(url),
            LogReader(Path(log_dir), state.position),
            table=table,
            interval=interval,
            hold=hold,
            resolve_interval=resolve_interval,
            subscriber=live,
            # PQL_FLUSHER_FASTPATH=0: every line through the reference path (an escape hatch,
            # and the baseline of bench/bench_flusher.py and bench_live.py latency)
            fast=os.environ.get("PQL_FLUSHER_FASTPATH", "1") != "0",
        )
    except BaseException as exc:
        state.set_error(exc)
        log.error(f"the flusher did not start: {exc}", exc_info=exc)
        raise SystemExit(1) from None
    state.stored_segment.value = flusher.checkpoint[0]
    state.ready.set()
    log.info(
        "storing the log into the database",
        extra={"table": table, "segment": flusher.checkpoint[0], "offset": flusher.checkpoint[1]},
    )
    progress = _progress(state, flusher, live, log)
    flusher.run(stop, progress)
    progress()


def _progress(state: SharedState, flusher: Any, live: Any, log: Any) -> Callable[[], None]:
    """What the flusher tells the server after each batch: its counts, its checkpoint, its
    error (logged once when storing starts failing and once when it works again), and what
    the subscriber keeps (live scoring's stats, the volume watch's statuses)."""
    said: list[str | None] = [None]

    def progress() -> None:
        state.stored.value = flusher.stored
        state.duplicates.value = flusher.duplicates
        state.suppressed.value = flusher.suppressed
        state.quarantined.value = flusher.quarantined
        state.fast_lines.value = flusher.fast_lines
        state.reference_lines.value = flusher.reference_lines
        state.stored_segment.value = flusher.checkpoint[0]
        state.stored_at.value = (flusher.checkpoint[0] << _OFFSET_BITS) | flusher.checkpoint[1]
        state.set_error(flusher.error)
        error = None if flusher.error is None else str(flusher.error)
        if error != said[0]:  # said once when storing starts failing, and when it works again
            if error is None:
                log.info("storing works again")
            else:
                log.warning(f"storing failed: {error}", extra={"error": error})
            said[0] = error
        if live is not None:
            stats = getattr(live, "stats", None)  # a subscriber may keep none
            if stats is not None:
                state.set_live(stats.__dict__)
            tracking = getattr(live, "tracking", None)  # the volume watch's statuses
            if tracking is not None:
                state.set_tracking(tracking)

    return progress


class FlusherProcess:
    """Starts and stops the flusher process."""

    def __init__(
        self,
        url: str,
        log_dir: Path,
        table: str,
        *,
        interval: float,
        resolve_interval: float,
        hold: bool,
        subscriber: Callable[[], Any] | None = None,
    ):
        self.ctx = multiprocessing.get_context("spawn")
        self.state = SharedState(self.ctx)
        self.args = (url, str(log_dir), table, interval, resolve_interval, hold)
        self.subscriber = subscriber
        self.process: Any = None
        self.restarts = 0
        """Times the watchdog started the flusher again after it died."""
        self.last_death: str | None = None
        self.gave_up = False
        """The flusher kept dying: the watchdog asked the server to stop (it exits non-zero)."""
        # held while the watchdog starts the flusher again and while stop() stops it: a
        # flusher started after the stop would be left running, never joined
        self._starting = threading.Lock()

    def start(self, timeout: float = 120.0) -> None:
        self.process = self.ctx.Process(
            target=flusher_main,
            name="pql-flusher",
            args=(*self.args, self.state, os.getpid(), self.subscriber),
        )
        self.process.start()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.state.ready.wait(0.05):
            if not self.process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the flusher did not start: {self.state.error_text() or 'no reason given'}"
                )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def watch(self, give_up: Callable[[], None], *, every: float = 0.5, tries: int = 5) -> None:
        """Start the flusher again whenever it dies (killed, out of memory, a bug): it resumes
        from the checkpoint the database holds, so nothing acknowledged is lost. After
        ``tries`` failed starts in a row, call ``give_up`` (the server stops, exit non-zero)."""

        def loop() -> None:
            failed = 0
            while not self.state.stop.wait(every):
                if self.alive:
                    failed = 0
                    continue
                code = self.process.exitcode if self.process is not None else None
                self.last_death = (
                    f"exit code {code}: {self.state.error_text() or 'no reason given'}"
                )
                try:
                    with self._starting:
                        if self.state.stop.is_set():  # it finished because it was told to
                            return
                        self.state.ready.clear()
                        self.start()
                    self.restarts += 1
                except RuntimeError:
                    failed += 1
                    if failed >= tries:
                        self.gave_up = True
                        give_up()
                        return
                    self.state.stop.wait(min(30.0, 2.0**failed))

        threading.Thread(target=loop, name="pql-flusher-watchdog", daemon=True).start()

    def stop(self) -> None:
        with self._starting:
            self.state.stop.set()
            running = self.process
        if running is not None:
            running.join()


class FlusherThread(FlusherProcess):
    """The flusher in a thread of the server's process, for `pql serve --ui` on a DuckDB file:
    the web app's requests and the flusher (its live rescoring and full passes) then share one
    database instance, and a page reads the last committed state through its own connection
    while a flush or a full pass writes (DuckDB's MVCC) instead of waiting for another process
    to let the file go; DuckDB lets only one process open a file. A thread that dies (its start
    failed) is started again by the same watchdog."""

    def start(self, timeout: float = 120.0) -> None:
        self.process = _Thread(
            target=serve_log,
            name="pql-flusher",
            args=(*self.args, self.state, self.subscriber, self.state.stop.is_set, False),
            # never a daemon (the watchdog's thread, which starts it again, is one): a daemon
            # inside DuckDB as the interpreter finalizes aborts the process; stop() joins it
            daemon=False,
        )
        self.process.start()
        self._wait_ready(timeout)


class _Thread(threading.Thread):
    """A thread with a process's exit code (what the watchdog reports of a death)."""

    exitcode: int | None = None

    def run(self) -> None:
        try:
            super().run()
            self.exitcode = 0
        except SystemExit as exc:
            self.exitcode = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            self.exitcode = 1
            raise


__all__ = ["FlusherProcess", "FlusherThread", "SharedState"]
