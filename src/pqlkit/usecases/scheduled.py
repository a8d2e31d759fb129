"""CRM syncs on the schedules the model declares (``every: {push: 15m, pull: 1h}`` on a CRM
destination), run by `pql serve --model` in a thread of the server's process, beside the
flusher.

A push is what `pql sync crm --destination ID` does, a pull what `pql sync outcomes
--destination ID` does, each with its own connection (on DuckDB it takes its turn with the
flusher and the web app). A sync that fails (the CRM is down, nothing is scored yet, a
refused token) is logged and tried again at its next time; it never stops the server. The
first sync of each runs one interval after the start. Each direction keeps its last attempt,
last success, failures and last error; its lag is the seconds since its last success (since
the server started, before the first).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import logs

log = logs.get("sync")

#: The longest a scheduled push keeps retrying a CRM that limits or fails (then the rest waits
#: for the next time).
GIVE_UP_AFTER = 300.0


@dataclass
class Job:
    """One destination, one direction, and how it went."""

    destination: str
    direction: str
    """push (write what changed) or pull (read outcomes back)."""
    every: float
    started: float = field(default_factory=time.time)
    due: float = 0.0
    runs: int = 0
    failures: int = 0
    last_at: float | None = None
    """When the last attempt ended (Unix seconds)."""
    last_ok_at: float | None = None
    last_error: str | None = None
    last_seconds: float | None = None

    def __post_init__(self) -> None:
        self.due = self.started + self.every

    def lag(self, now: float) -> float:
        return now - (self.last_ok_at or self.started)

    def status(self, now: float) -> dict[str, Any]:
        return {
            "every_seconds": self.every,
            "runs": self.runs,
            "failures": self.failures,
            "last_at": self.last_at,
            "last_ok_at": self.last_ok_at,
            "ok": self.last_at is not None and self.last_at == self.last_ok_at,
            "lag_seconds": round(self.lag(now), 1),
            "last_seconds": self.last_seconds,
            "last_error": self.last_error,
        }


Runner = Callable[[Job], dict[str, Any]]


class ScheduledSyncs:
    """The model's scheduled CRM syncs, in one thread; ``runner`` does one sync and returns
    what to log of it (the default calls the CRM use cases)."""

    def __init__(self, jobs: list[Job], runner: Runner):
        self.jobs = jobs
        self.runner = runner
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_model(cls, model_path: str | Path, url: str | None) -> ScheduledSyncs | None:
        """The syncs ``model_path`` schedules (None when it schedules none)."""
        from ..model.crm import HubSpotDestination, SalesforceDestination
        from ..model.load import load_model

        handoff = load_model(model_path).model.handoff
        jobs = [
            Job(d.id, direction, seconds)
            for d in (handoff.destinations if handoff else [])
            if isinstance(d, HubSpotDestination | SalesforceDestination) and d.every is not None
            for direction, seconds in d.every.directions().items()
        ]
        if not jobs:
            return None
        from .crm import _extra

        _extra()  # the CRM extra is installed, or `pql serve` says so at the start
        return cls(jobs, _crm_runner(str(model_path), url))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pql-crm-sync", daemon=True)
        self._thread.start()
        for job in self.jobs:
            log.info(
                f"{job.direction} {job.destination} every {job.every:g} s",
                extra={"destination": job.destination, "direction": job.direction},
            )

    def stop(self, timeout: float = 30.0) -> None:
        """No new sync starts; one in flight gets ``timeout`` seconds to end (what it did not
        send goes at the next start: the ledger says what changed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = min(self.jobs, key=lambda j: j.due)
            if self._stop.wait(max(0.0, job.due - time.time())):
                return
            self.run(job)

    def run(self, job: Job) -> None:
        """One sync of ``job`` now; its outcome recorded and logged, its next time set."""
        began = time.time()
        fields: dict[str, Any] = {"destination": job.destination, "direction": job.direction}
        try:
            said = self.runner(job)
        except Exception as exc:  # a failing sync waits for its next time, the server goes on
            job.failures += 1
            job.last_error = f"{type(exc).__name__}: {exc}"
            log.warning(
                f"{job.direction} {job.destination} failed, next try in {job.every:g} s: {exc}",
                extra={**fields, "error": job.last_error},
            )
        else:
            job.last_ok_at = time.time()
            job.last_error = None
            log.info(f"{job.direction} {job.destination} done", extra={**fields, **said})
        job.runs += 1
        job.last_at = job.last_ok_at if job.last_error is None else time.time()
        job.last_seconds = round(time.time() - began, 3)
        job.due = time.time() + job.every

    def status(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Destination → direction → how its syncs went (for /metrics)."""
        now = time.time()
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for job in self.jobs:
            out.setdefault(job.destination, {})[job.direction] = job.status(now)
        return out

    def health(self) -> dict[str, dict[str, dict[str, Any]]]:
        """What /health shows (open to anyone: no error text)."""
        keep = ("ok", "last_ok_at", "lag_seconds")
        return {
            d: {k: {f: v[f] for f in keep} for k, v in ways.items()}
            for d, ways in self.status().items()
        }


def _crm_runner(model_path: str, url: str | None) -> Runner:
    def run(job: Job) -> dict[str, Any]:
        from .crm import sync_crm, sync_outcomes

        if job.direction == "push":
            (report,) = sync_crm(
                model_path,
                url,
                destination=job.destination,
                give_up_after=min(GIVE_UP_AFTER, max(job.every, 10.0)),
            )
            said = {
                "sent": sum(o.sent for o in report.objects),
                "failed": report.failed,
                "calls": report.calls,
            }
            if report.stopped:
                raise RuntimeError(report.stopped)
            return said
        (read,) = sync_outcomes(model_path, url, destination=job.destination)
        return {"read": read.read, "mapped_users": read.mapped_users}

    return run


__all__ = ["Job", "ScheduledSyncs"]
