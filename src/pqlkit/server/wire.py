"""The collector's HTTP wire: reading a request body (gzip too) and writing a JSON answer, on
raw ASGI messages."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from ..collect.segment_api import MAX_BATCH_BYTES, ApiError

#: The most a request body may hold (raw or gzip-inflated): a batch and room for its framing.
MAX_BODY = MAX_BATCH_BYTES + 64 * 1024


class ClientGone(Exception):
    """The client went away before its body was complete: nothing is logged or answered."""


async def read_body(receive, limit: int) -> bytes:
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


def gunzip(raw: bytes, limit: int) -> bytes:
    """Every member of a gzip body, as ``gzip.decompress`` reads it, at most ``limit`` bytes in
    all; bytes after the last member that are not gzip are refused, not ignored."""
    out: list[bytes] = []
    size = members = 0
    rest = raw
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(rest, limit + 1 - size)
        except zlib.error:
            if members:
                raise ApiError(
                    400,
                    "invalid_gzip",
                    f"the gzip body has {len(rest)} byte(s) after its end that are not gzip; "
                    "send the compressed stream and nothing after it",
                ) from None
            raise ApiError(400, "invalid_gzip", "the body is not valid gzip") from None
        size += len(chunk)
        out.append(chunk)
        if size > limit:
            raise ApiError(
                400,
                "batch_too_large",
                f"a request may be at most {MAX_BATCH_BYTES} bytes uncompressed",
            )
        if not d.eof:
            raise ApiError(400, "invalid_gzip", "the gzip body is truncated")
        members += 1
        rest = d.unused_data
        if not rest:
            return b"".join(out)


async def send_json(send, status: int, body: dict[str, Any], headers: list | None = None) -> None:
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


__all__ = ["MAX_BODY", "ClientGone", "gunzip", "read_body", "send_json"]


async def send_bytes(send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
