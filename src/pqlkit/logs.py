"""What the running parts say on stderr: as text for a person (the default), or as JSON lines
for a log shipper (`pql serve --log-format json`, or PQLKIT_LOG_FORMAT=json): one object per
line with ``time`` (ISO 8601, UTC), ``level``, ``part`` (server, flusher, deliveries, sync,
web, cli for a command's error, warnings for Python's), ``message``, and the record's ``fields``; an exception comes as ``error`` and
``traceback`` fields, never as lines of its own.

The format travels in the environment, so the flusher's process (spawned, not forked) and
anything else the server starts write the same way. A part names itself by the logger it
takes: ``logs.get("sync")`` is ``pqlkit.sync``. Nothing is configured at import time.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import traceback
from datetime import UTC, datetime
from typing import Any

ENV = "PQLKIT_LOG_FORMAT"
FORMATS = ("text", "json")
#: Loggers of other libraries that write in a server's process, and the part they belong to.
_THEIRS = {
    "uvicorn": "server",
    "uvicorn.error": "server",
    "uvicorn.access": "server",
    "py.warnings": "warnings",
}
#: Older loggers of pqlkit, by the part they speak for.
_RENAMED = {"collect": "flusher", "live": "deliveries"}
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


_ACTIVE: list[str] = []
"""The format :func:`setup` gave this process (empty before)."""


def active() -> str | None:
    """The format this process writes its logs in, once :func:`setup` ran; else None."""
    return _ACTIVE[-1] if _ACTIVE else None


def get(part: str) -> logging.Logger:
    """The logger of one part of pqlkit (its records carry ``part``)."""
    return logging.getLogger(f"pqlkit.{part}")


def log_format(given: str | None = None) -> str:
    """``given`` (an option), else $PQLKIT_LOG_FORMAT, else text; a clear error otherwise."""
    from .errors import PqlkitError

    value = (given or os.environ.get(ENV) or "text").strip().lower()
    if value not in FORMATS:
        where = "--log-format" if given else f"${ENV}"
        raise PqlkitError(f"{where} {value!r}: use text or json")
    return value


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: _plain(v) for k, v in vars(record).items() if k not in _STANDARD}
        part = fields.pop("part", None) or _part(record.name)
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "part": part,
            "message": record.getMessage().strip(),
            "fields": fields,
        }
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["fields"]["error"] = f"{type(exc).__name__}: {exc}"
            line["fields"]["traceback"] = "".join(traceback.format_exception(exc))
        return json.dumps(line, ensure_ascii=False, default=str)


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and k != "part"}
        text = f"pqlkit {_part(record.name)} {record.levelname.lower()}: {record.getMessage()}"
        if fields:
            text += " (" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(record.exc_info[1])).rstrip()
        return text


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes (a test runner swaps it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _part(name: str) -> str:
    if name in _THEIRS:
        return _THEIRS[name]
    parts = name.split(".")
    if parts[0] != "pqlkit" or len(parts) < 2:
        return name
    return _RENAMED.get(parts[1], parts[1])


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def setup(fmt: str | None = None, *, level: int = logging.INFO) -> str:
    """Send pqlkit's records (and uvicorn's) to stderr in ``fmt`` (else as the environment
    says), and put the format in the environment for the processes this one starts. Returns
    the format."""
    fmt = log_format(fmt)
    os.environ[ENV] = fmt
    _ACTIVE.append(fmt)
    handler = _Stderr()
    handler.setFormatter(JsonLines() if fmt == "json" else _Text())
    for name in ("pqlkit", *_THEIRS):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.WARNING if name == "uvicorn.access" else level)
    if fmt == "json":
        logging.captureWarnings(True)  # a Python warning is a line like the others
        sys.excepthook = _logged_excepthook
        threading.excepthook = _logged_thread_exception
    return fmt


def _logged_excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """An uncaught exception as one JSON line, not a traceback's many lines."""
    get("server").error("uncaught exception", exc_info=(kind, exc, tb))


def _logged_thread_exception(args: Any) -> None:
    if args.exc_value is not None:
        get("server").error(
            "uncaught exception in a thread",
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            extra={"thread": args.thread.name if args.thread else None},
        )


__all__ = ["ENV", "FORMATS", "JsonLines", "active", "get", "log_format", "setup"]
