"""A Segment-compatible collector as a plain ASGI app (run by `pql serve` under uvicorn).

    POST /v1/batch /v1/track /v1/identify /v1/group /v1/page /v1/screen /v1/alias
    GET  /health   GET /metrics

A request is validated, then logged as it came (its body, source and receive time, one line)
and acknowledged (HTTP 200, JSON body) only after the line is fsync'ed to the durable log. A
flusher in a process of its own normalises the messages and moves them into the database. 400 means "do not retry as
is" and names the message and field; 401 a wrong or missing write key; 503 with Retry-After
when the log's queue is too deep.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import hashlib
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..backends import connect
from ..collect.background import FlusherProcess
from ..collect.log import DurableLog
from ..collect.segment_api import MAX_BATCH_BYTES, ApiError, check_body

MAX_BODY = MAX_BATCH_BYTES + 64 * 1024


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Collector:
    """The ASGI app. ``write_keys`` maps a source name to its write key (kept only hashed)."""

    def __init__(
        self,
        url: str,
        log_dir: str | Path,
        write_keys: dict[str, str],
        *,
        table: str = "events",
        max_queue: int = 250_000,
        flush_interval: float = 0.25,
        resolve_interval: float = 5.0,
        max_backlog_segments: int = 32,
    ):
        if not write_keys:
            raise ValueError("the collector needs at least one write key (--write-key SOURCE=KEY)")
        self.url = url
        self.log_dir = Path(log_dir)
        self.keys = {hash_key(k): source for source, k in write_keys.items()}
        self._known: dict[str, str] = {}  # Authorization headers already checked -> source
        self.table = table
        self.max_queue = max_queue
        self.flush_interval = flush_interval
        self.resolve_interval = resolve_interval
        self.max_backlog_segments = max_backlog_segments  # x 64 MB of log not yet in the database
        self.accepted = 0
        self.rejected = 0
        self.abandoned = 0  # requests whose client left before the body was complete
        self.log: DurableLog | None = None
        self.flusher: FlusherProcess | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        probe = connect(self.url)  # fails here, clearly, if the database cannot be opened
        hold = probe.path is None  # a DuckDB file is opened per flush, so other commands can use it
        if probe.url == ":memory:":
            raise ValueError("the collector needs a database file or server, not :memory:")
        probe.close()
        self.flusher = FlusherProcess(
            self.url,
            self.log_dir,
            self.table,
            interval=self.flush_interval,
            resolve_interval=self.resolve_interval,
            hold=hold,
        )
        self.log = DurableLog(self.log_dir, on_durable=self.flusher.state.publish)
        self.flusher.start()  # first stores what a previous run acknowledged but did not store
        # Everything imported so far lives as long as the server: keep it out of the garbage
        # collector's full passes, which otherwise walk it all while requests wait (p99).
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        if self.log is not None:
            self.log.close()  # everything acknowledged is durable
        if self.flusher is not None:
            self.flusher.stop()  # and stored

    # --- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/"), scope["method"]
        if method == "GET" and path == "/health":
            error = self.flusher.state.error_text() if self.flusher else None
            if self.flusher is not None and not self.flusher.alive:
                error = f"the flusher process has stopped ({error or 'no reason given'})"
            status = 200 if error is None else 503
            quarantined = self.flusher.state.quarantined.value if self.flusher else 0
            await _json(
                send,
                status,
                {
                    "status": "ok" if error is None else "degraded",
                    **({"error": str(error)} if error else {}),
                    # stored apart with the reason: see pql_quarantine
                    "quarantined": quarantined,
                },
            )
            return
        if method == "GET" and path == "/metrics":
            await _json(send, 200, self.metrics())
            return
        if not path.startswith("/v1/"):
            await _json(send, 404, {"code": "not_found", "message": f"no endpoint {path}"})
            return
        if method != "POST":
            await _json(send, 405, {"code": "method_not_allowed", "message": "use POST"})
            return
        try:
            status, body = await self._ingest(path[4:], scope, receive)
        except ClientGone:
            self.abandoned += 1
            return
        except ApiError as exc:
            self.rejected += 1
            status, body = exc.status, exc.body()
        headers = [(b"retry-after", b"1")] if status in (429, 503) else []
        await _json(send, status, body, headers)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _ingest(self, endpoint: str, scope, receive) -> tuple[int, dict[str, Any]]:
        authorization = encoding = None
        for key, value in scope["headers"]:
            name = key.lower()
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-encoding":
                encoding = value.decode("latin-1").lower()
        raw = await _read_body(receive, MAX_BODY)
        if encoding in ("gzip", "x-gzip"):
            raw = _gunzip(raw, MAX_BODY)
        elif encoding not in (None, "", "identity"):
            raise ApiError(
                415,
                "unsupported_encoding",
                f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
            )
        try:
            body = orjson.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        source = self._source(authorization, body)
        assert self.log is not None  # started by the lifespan
        if self.log.pending_messages > self.max_queue:
            return 503, {"code": "overloaded", "message": "the collector is busy; retry shortly"}
        if (
            self.flusher is not None
            and self.flusher.state.backlog_segments() > self.max_backlog_segments
        ):
            return 503, {
                "code": "overloaded",
                "message": "the database is behind the log; retry shortly (nothing was stored)",
            }
        now = datetime.now(UTC).replace(tzinfo=None)
        received = now.isoformat() + "Z"
        n = check_body(endpoint, body, len(raw), received_at=now)
        # The body goes to the log as it came (JSON whitespace made spaces, so it is one line):
        # nothing is serialised again on the request path.
        line = b"".join(
            (
                b'{"s":',
                orjson.dumps(source),
                b',"r":"',
                received.encode(),
                b'","e":',
                orjson.dumps(endpoint),
                b',"b":',
                raw.replace(b"\r", b" ").replace(b"\n", b" "),
                b"}\n",
            )
        )
        await asyncio.wrap_future(self.log.append([line], messages=n))
        self.accepted += n
        return 200, {"success": True}

    def _source(self, authorization: str | None, body: Any) -> str:
        if authorization is not None and authorization in self._known:
            return self._known[authorization]
        key = None
        if authorization and authorization.lower().startswith("basic "):
            try:
                key = base64.b64decode(authorization[6:].strip()).decode().split(":", 1)[0]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        from_header = key is not None and bool(key) and self.keys.get(hash_key(key)) is not None
        if not from_header and isinstance(body, dict) and body.get("writeKey"):
            key = body.get("writeKey")
        source = self.keys.get(hash_key(key)) if isinstance(key, str) and key else None
        if source is None:
            raise ApiError(
                401,
                "unauthorized",
                "a valid write key is needed (HTTP Basic 'writeKey:' or writeKey in the body)",
            )
        if from_header and authorization is not None and len(self._known) < 1024:
            self._known[authorization] = source  # a good header, seen again on every request
        return source

    def metrics(self) -> dict[str, Any]:
        state = self.flusher.state if self.flusher else None
        position = state.position() if state else (0, 0)
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "deduplicated": state.duplicates.value if state else 0,
            "stored": state.stored.value if state else 0,
            "suppressed": state.suppressed.value if state else 0,
            "quarantined": state.quarantined.value if state else 0,
            "abandoned": self.abandoned,
            "queue_depth": self.log.pending_messages if self.log else 0,
            "backlog_segments": state.backlog_segments() if state else 0,
            "log_position": {"segment": position[0], "offset": position[1]},
        }


class ClientGone(Exception):
    """The client went away before its body was complete: nothing is logged or answered."""


async def _read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone  # e.g. a chunked body without its terminator: never logged
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(
                400, "batch_too_large", f"a request may be at most {MAX_BATCH_BYTES} bytes"
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _gunzip(raw: bytes, limit: int) -> bytes:
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(raw, limit + 1)
    except zlib.error:
        raise ApiError(400, "invalid_gzip", "the body is not valid gzip") from None
    if len(out) <= limit and not d.eof:
        raise ApiError(400, "invalid_gzip", "the gzip body is truncated")
    if len(out) > limit:
        raise ApiError(
            400, "batch_too_large", f"a request may be at most {MAX_BATCH_BYTES} bytes uncompressed"
        )
    return out


async def _json(send, status: int, body: dict[str, Any], headers: list | None = None) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
