"""`pql import`: files into the events table, losing nothing that is good.

Each bad row is reported with its file, line and why, and the good rows still go in (unless
`strict`). Events already stored (same message id, per source) and repeats within the files
are counted, not stored twice. Everything one call imports is written in one transaction:
a failure leaves the table as it was.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import DataError
from . import identity
from .records import (
    EVENT_COLUMNS,
    MESSAGE_FORMATS,
    RowError,
    from_amplitude,
    from_row,
    from_segment,
    parse_timestamp,
)
from .schema import require_writable
from .store import (
    EVENTS_SCHEMA,
    MESSAGES,
    MESSAGES_SCHEMA,
    ensure_table,
    is_suppressed,
    message_row,
    suppressed_ids,
)

FORMATS = ("csv", "jsonl", "parquet", *MESSAGE_FORMATS)
CHUNK = 50_000


@dataclass
class FileReport:
    """What one file gave."""

    path: str
    format: str
    read: int = 0
    accepted: int = 0
    identity_messages: int = 0
    """identify, group and alias messages (kept for identity resolution, not events)."""
    suppressed: int = 0
    """Rows for forgotten users, dropped."""
    problems: list[tuple[int, str]] = field(default_factory=list)
    """(line or row number, why), for every row that was skipped."""

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def reasons(self) -> Counter:
        return Counter(why.split(":")[0] for _, why in self.problems)


@dataclass
class ImportReport:
    """What an import stored."""

    table: str
    source: str
    files: list[FileReport]
    imported: int = 0
    duplicates: int = 0
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source": self.source,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "files": [
                {
                    "path": f.path,
                    "format": f.format,
                    "read": f.read,
                    "accepted": f.accepted,
                    "identity_messages": f.identity_messages,
                    "suppressed": f.suppressed,
                    "skipped": f.skipped,
                    "problems": [{"line": line, "reason": why} for line, why in f.problems[:100]],
                }
                for f in self.files
            ],
        }


def format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise DataError(
        f"{path}: cannot tell the format from the name; pass --format ({', '.join(FORMATS)})"
    )


def _rows(
    path: Path, fmt: str, text_columns: frozenset[str] = frozenset()
) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line or row number, row, or None and why it could not be read). A CSV's
    ``text_columns`` (its id columns) are read as text: typed as numbers, ids past 2**53
    would lose digits."""
    if fmt == "parquet":
        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK):
            for row in batch.to_pylist():
                n += 1
                yield n, row, None
        return
    if fmt == "csv":
        reader = pacsv.open_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(text_columns, pa.string()), strings_can_be_null=True
            ),
        )
        n = 1  # the header is line 1
        for batch in reader:
            for row in batch.to_pylist():
                n += 1
                yield n, row, None
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.read(1)
        fh.seek(0)
        if first == "[" or (first == "{" and fmt in MESSAGE_FORMATS and _is_batch_document(path)):
            yield from _document_rows(path)
            return
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, None, f"not valid JSON ({exc.msg})"
                continue
            if not isinstance(value, dict):
                yield n, None, "a line must be a JSON object"
                continue
            yield n, value, None


def _is_batch_document(path: Path) -> bool:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("batch"), list)


def _document_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """A JSON array of messages, or a Segment batch document {"batch": [...]} (message numbers)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        yield exc.lineno if hasattr(exc, "lineno") else 1, None, f"not valid JSON ({exc})"
        return
    items = value.get("batch") if isinstance(value, dict) else value
    shared = {
        k: value[k] for k in ("context", "integrations") if isinstance(value, dict) and k in value
    }
    for n, item in enumerate(items or [], start=1):
        if not isinstance(item, dict):
            yield n, None, "a message must be a JSON object"
            continue
        for key, val in shared.items():
            if isinstance(val, dict):
                item[key] = {**val, **(item.get(key) or {})}
        yield n, item, None


def import_files(
    backend,
    paths: list[Path],
    *,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    table: str = "events",
    source: str = "import",
    strict: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> ImportReport:
    """Import event files into ``table`` (created if missing) and report what happened.

    Long because it reads every file, reports each bad row with its place, and stores all in
    one transaction, saying how far it got at each step."""
    started = time.perf_counter()
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(EVENT_COLUMNS))
    if unknown:
        raise DataError(
            f"--map {unknown[0]}=...: {unknown[0]!r} is not an events column ({', '.join(EVENT_COLUMNS)})"
        )
    received = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    report = ImportReport(table=table, source=source, files=[])
    seen: set[str] = set()
    chunks: list[pa.Table] = []
    pending: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    ids = identity.IdentityBatch()
    suppressed = suppressed_ids(backend)
    within_duplicates = 0
    for path in paths:
        if not path.exists():
            raise DataError(f"{path}: no such file")
        file_fmt = fmt or format_of(path)
        if file_fmt not in FORMATS:
            raise DataError(f"unknown format {file_fmt!r}; use one of {', '.join(FORMATS)}")
        fr = FileReport(path=str(path), format=file_fmt)
        report.files.append(fr)
        ids_as_text = frozenset(mapping.get(c, c) for c in _ID_COLUMNS)
        for line, row, unreadable in _rows(path, file_fmt, ids_as_text):
            fr.read += 1
            if progress and fr.read % 10_000 == 0:
                progress(f"reading {path}", fr.read)
            if row is None:
                fr.problems.append((line, unreadable or "unreadable"))
                continue
            try:
                if file_fmt in ("segment", "rudderstack"):
                    if is_suppressed(row, suppressed):
                        fr.suppressed += 1
                        continue
                    record = from_segment(row, source, received)
                    if record is None:
                        message = _identity_message(row, received)
                        if str(message["messageId"]) in seen:  # one id, one message
                            within_duplicates += 1
                            continue
                        seen.add(str(message["messageId"]))
                        ids.message(message, source)
                        messages.append(message_row(message, source))
                        fr.identity_messages += 1
                        continue
                elif file_fmt == "amplitude":
                    record = from_amplitude(row, source, received)
                else:
                    record = from_row(row, mapping, source, received)
            except RowError as exc:
                fr.problems.append((line, str(exc)))
                continue
            if record["user_id"] in suppressed or record["anonymous_id"] in suppressed:
                fr.suppressed += 1
                continue
            if record["message_id"] in seen:
                within_duplicates += 1
                continue
            seen.add(record["message_id"])
            fr.accepted += 1
            ids.event(record)
            pending.append(record)
            if len(pending) >= CHUNK:
                chunks.append(pa.Table.from_pylist(pending, schema=EVENTS_SCHEMA))
                pending = []
        if progress:
            progress(f"reading {path}", fr.read)
    if pending:
        chunks.append(pa.Table.from_pylist(pending, schema=EVENTS_SCHEMA))
    if strict and report.skipped:
        first = [f"{f.path}:{line}: {why}" for f in report.files for line, why in f.problems][:20]
        raise DataError(
            f"--strict: {report.skipped} bad row(s), nothing was imported:\n  " + "\n  ".join(first)
        )
    accepted = sum(c.num_rows for c in chunks)
    if chunks or messages:
        if progress:
            progress("storing in the database", accepted + len(messages))
        report.imported = _store(backend, table, chunks, messages, ids)
        identity.materialize(backend)
    report.duplicates = within_duplicates + (accepted - report.imported)
    report.seconds = time.perf_counter() - started
    return report


#: The events columns that hold ids.
_ID_COLUMNS = ("message_id", "user_id", "anonymous_id", "account_id")


def _identity_message(row: dict[str, Any], received: datetime) -> dict[str, Any]:
    """An identify, group or alias message with the fields storing it needs, or RowError."""
    message = dict(row)
    stamp = message.get("timestamp") or message.get("originalTimestamp") or message.get("sentAt")
    message["timestamp"] = (
        parse_timestamp(stamp).isoformat() if stamp is not None else received.isoformat()
    )
    message["receivedAt"] = message.get("receivedAt") or received.isoformat()
    if not message.get("messageId"):
        key = json.dumps(row, sort_keys=True, default=str)
        message["messageId"] = "pql-" + hashlib.sha1(key.encode()).hexdigest()
    if not (message.get("userId") or message.get("anonymousId")):
        raise RowError(
            "userId", f"an {message.get('type')} message needs a userId or an anonymousId"
        )
    return message


def _store(
    backend,
    table: str,
    chunks: list[pa.Table],
    messages: list[dict[str, Any]],
    ids: identity.IdentityBatch,
) -> int:
    """Insert, in one transaction, the rows whose (source, message_id) is not stored yet, the
    identity messages, and what they say about identities."""
    require_writable(backend, table, who="pql import")
    backend.ensure_table(table, EVENTS_SCHEMA)
    ensure_table(backend, MESSAGES, MESSAGES_SCHEMA)
    identity.ensure_tables(backend)
    with backend.transaction():
        # a message id names one message, event or identify, group and alias alike
        stored = sum(
            backend.insert_new(table, chunk, window=None, also=(MESSAGES,)) for chunk in chunks
        )
        backend.insert_new(
            MESSAGES,
            pa.Table.from_pylist(messages, schema=MESSAGES_SCHEMA),
            window=None,
            also=(table,),
        )
        identity.store(backend, ids)
    backend.analyze([table, MESSAGES, *identity.APPEND_ONLY])
    return stored
