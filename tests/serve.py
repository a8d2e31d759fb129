"""`pql serve` in a process of its own, for the tests that drive it over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

from .conftest import free_port

#: The key the tests' collectors take for GET /metrics.
METRICS_KEY = "mk_test"
METRICS_AUTH = {"authorization": f"Bearer {METRICS_KEY}"}


def wait_healthy(url: str, proc: subprocess.Popen, stderr: Path, timeout: float = 60) -> None:
    """Until ``url``/health answers 200; fails with the process's stderr if it exits first or
    the time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not start: {stderr.read_text()}")


class Serve:
    """A collector on a free port with its database and log under ``folder``. ``args`` are
    more `pql serve` options, ``env`` more environment variables."""

    def __init__(
        self,
        folder: Path,
        *,
        db: str = "c.duckdb",
        write_keys: tuple[str, ...] = ("web=wk_web",),
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        self.db = str(folder / db)
        self.log = str(folder / "log")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.stderr = folder / "server.err"
        self.write_keys = write_keys
        self.args = args
        self.env = env or {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        command = [sys.executable, "-m", "pqlkit.cli", "serve", "--port", str(self.port)]
        command += ["--url", self.db, "--log-dir", self.log, "--resolve-every", "0"]
        for key in self.write_keys:
            command += ["--write-key", key]
        env = {
            **os.environ,
            "PYTHONWARNINGS": "ignore",
            "PQL_METRICS_KEY": METRICS_KEY,
            **self.env,
        }
        with self.stderr.open("ab") as err:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                [*command, *self.args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # its own process group: kill() takes the flusher too
            )
        wait_healthy(self.url, self.proc, self.stderr, timeout)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the server process alone (with SIGKILL its flusher, orphaned, stores what is
        durable and exits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def kill(self) -> None:
        """SIGKILL the server and its flusher at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def metrics(self) -> dict:
        return httpx.get(self.url + "/metrics", headers=METRICS_AUTH, timeout=5).json()

    def events(self) -> list[tuple]:
        with duckdb.connect(self.db, read_only=True) as con:
            return con.execute(
                "SELECT source, message_id, user_id, event FROM events ORDER BY message_id"
            ).fetchall()
