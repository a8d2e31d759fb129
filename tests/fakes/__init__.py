"""Local HTTP servers that implement the documented CRM endpoints pqlkit calls (no CRM is
reachable from tests): real sockets, real JSON, the CRMs' limits and error shapes."""

from __future__ import annotations

import threading
import time

import uvicorn

from ..conftest import free_port


class Running:
    """An ASGI app served by uvicorn on a free port, in a thread."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise AssertionError("the fake server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
