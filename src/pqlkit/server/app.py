"""A Segment-compatible collector as a plain ASGI app (run by `pql serve` under uvicorn).

    POST /v1/batch /v1/track /v1/identify /v1/group /v1/page /v1/screen /v1/alias
    GET  /health   GET /metrics

A request is acknowledged (HTTP 200, JSON body) only after its messages are fsync'ed to the
durable log; a background flusher moves them into the database. 400 means "do not retry as
is" and names the message and field; 401 a wrong or missing write key; 503 with Retry-After
when the log's queue is too deep.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..backends import connect
from ..collect.log import DurableLog
from ..collect.segment_api import MAX_BATCH_BYTES, ApiError, messages_from_body
from ..collect.store import Flusher

MAX_BODY = MAX_BATCH_BYTES + 64 * 1024


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Collector:
    """The ASGI app. ``write_keys`` maps a source name to its write key (kept only hashed)."""

    def __init__(self, url: str, log_dir: str | Path, write_keys: dict[str, str], *,
                 table: str = "events", max_queue: int = 250_000, flush_interval: float = 0.25,
                 resolve_interval: float = 5.0):
        if not write_keys:
            raise ValueError("the collector needs at least one write key (--write-key SOURCE=KEY)")
        self.url = url
        self.log_dir = Path(log_dir)
        self.keys = {hash_key(k): source for source, k in write_keys.items()}
        self.table = table
        self.max_queue = max_queue
        self.flush_interval = flush_interval
        self.resolve_interval = resolve_interval
        self.accepted = 0
        self.rejected = 0
        self.log: DurableLog | None = None
        self.flusher: Flusher | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.log = DurableLog(self.log_dir)
        probe = connect(self.url)
        hold = probe.path is None  # a DuckDB file is opened per flush, so other commands can use it
        probe.close()
        self.flusher = Flusher(lambda: connect(self.url), self.log, table=self.table,
                               interval=self.flush_interval, hold=hold, resolve_interval=self.resolve_interval)
        self.flusher.flush_once()  # what a previous run acknowledged but did not store
        self.flusher.start()

    def stop(self) -> None:
        if self.flusher is not None:
            self.flusher.stop()
        if self.log is not None:
            self.log.close()

    # --- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/"), scope["method"]
        if method == "GET" and path == "/health":
            error = self.flusher.error if self.flusher else None
            status = 200 if error is None else 503
            await _json(send, status, {"status": "ok" if error is None else "degraded",
                                       **({"error": str(error)} if error else {})})
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
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw = await _read_body(receive, MAX_BODY)
        if headers.get("content-encoding", "").lower() == "gzip":
            raw = _gunzip(raw, MAX_BODY)
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        source = self._source(headers.get("authorization"), body)
        assert self.log is not None  # started by the lifespan
        if self.log.pending_messages > self.max_queue:
            return 503, {"code": "overloaded", "message": "the collector is busy; retry shortly"}
        received = datetime.now(UTC).replace(tzinfo=None)
        messages = messages_from_body(endpoint, body, len(raw), received)
        lines = [json.dumps({"source": source, "message": m}, default=str).encode() + b"\n" for m in messages]
        await asyncio.wrap_future(self.log.append(lines))
        self.accepted += len(messages)
        return 200, {"success": True}

    def _source(self, authorization: str | None, body: Any) -> str:
        key = None
        if authorization and authorization.lower().startswith("basic "):
            try:
                key = base64.b64decode(authorization[6:].strip()).decode().split(":", 1)[0]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        if not key and isinstance(body, dict):
            key = body.get("writeKey")
        source = self.keys.get(hash_key(key)) if isinstance(key, str) and key else None
        if source is None:
            raise ApiError(401, "unauthorized", "a valid write key is needed (HTTP Basic 'writeKey:' or writeKey in the body)")
        return source

    def metrics(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "deduplicated": self.flusher.duplicates if self.flusher else 0,
            "stored": self.flusher.stored if self.flusher else 0,
            "suppressed": self.flusher.suppressed if self.flusher else 0,
            "queue_depth": self.log.pending_messages if self.log else 0,
        }


async def _read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(400, "batch_too_large", f"a request may be at most {MAX_BATCH_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _gunzip(raw: bytes, limit: int) -> bytes:
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(raw, limit + 1)
    except zlib.error:
        raise ApiError(400, "invalid_gzip", "the body is not valid gzip") from None
    if len(out) > limit:
        raise ApiError(400, "batch_too_large", f"a request may be at most {MAX_BATCH_BYTES} bytes uncompressed")
    return out


async def _json(send, status: int, body: dict[str, Any], headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})
