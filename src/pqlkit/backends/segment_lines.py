"""Segment requests as the collector logs them, read by DuckDB: the event rows of track, page
and screen messages, and for each message whether it is one this reader reads *exactly* as
the collector's Python normalisation does (:mod:`pqlkit.collect.fastpath` decides what to do
with the others). A DuckDB program by design: it runs on an in-memory connection of its own
(:func:`pqlkit.backends.duckdb.scratch`) over Arrow data in the process, whatever database
the rows then go to.

Columns of the result: k (the line), seq (line * 10000 + the message's place), fast,
message_id, source, user_id, anonymous_id, previous_id, account_id, event, timestamp,
received_at, properties. Lines come in a table ``lines`` (k, prefix, line); single-message
requests in ``single_lines``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import pyarrow as pa

from .duckdb import scratch

#: Characters str.strip() removes: an id that starts or ends with one is left to the reference.
_SPACE = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
#: The ISO 8601 forms both Python's fromisoformat and DuckDB read the same way.
_ISO = (
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?"
)

_MESSAGE = (
    '{"type":"JSON","messageId":"JSON","userId":"JSON","anonymousId":"JSON","previousId":"JSON",'
    '"event":"JSON","name":"JSON","timestamp":"JSON","originalTimestamp":"JSON","sentAt":"JSON",'
    '"properties":"JSON","context":"JSON"}'
)
#: The keys of a message this reader reads.
_READ = tuple(json.loads(_MESSAGE))
#: SQL: no key of the message that this reader reads is repeated (DuckDB keeps the first of a
#: repeated key, orjson the last). Counted in the message's keys, the keys read are as many as
#: those with a value (not null) only when each is there once with a value; otherwise (a null,
#: a repeat: the costly case, rare) all its keys are compared.
_READ_ONCE = (
    "CASE WHEN len(list_filter(keys, x -> x IN ("
    + ", ".join(f"'{key}'" for key in _READ)
    + "))) = "
    + " + ".join(f'(m."{key}" IS NOT NULL)::INT' for key in _READ)
    + " THEN true ELSE list_unique(keys) = len(keys) END"
)
_LINE = (
    '{"s":"JSON","r":"JSON","e":"JSON","b":{"batch":['
    + _MESSAGE
    + '],"sentAt":"JSON","context":"JSON"}}'
)
_SINGLE_LINE = '{"s":"JSON","r":"JSON","e":"JSON","b":' + _MESSAGE + "}"


def _string(json_value: str) -> str:
    """SQL: the text of a JSON string value (DuckDB writes values it extracts minified: text
    without a backslash is the text between the quotes), NULL for any other value."""
    return (
        f"CASE WHEN starts_with({json_value}, '\"') THEN CASE WHEN contains({json_value}, '\\') "
        f"THEN {json_value} ->> '$' ELSE {json_value}[2:-2] END END"
    )


def _kept(text: str) -> str:
    """SQL: the text is not empty and str.strip() would leave it as it is (RE2's ^ and $ are
    the ends of the text)."""
    return f"({text} <> '' AND NOT regexp_matches({text}, '^[{_SPACE}]|[{_SPACE}]$'))"


def _absent(json_value: str) -> str:
    return f"({json_value} IS NULL OR {json_value} = 'null')"


def _blank(json_value: str) -> str:
    return f"({json_value} IS NULL OR {json_value} IN ('null', '\"\"'))"


def _time(text: str) -> str:
    """SQL: epoch microseconds of an ISO 8601 text (naive means UTC); NULL otherwise."""
    return (
        f"CASE WHEN regexp_full_match({text}, '{_ISO}') "
        f"THEN epoch_us(try_cast({text} AS TIMESTAMPTZ)) END"
    )


def _in_range(us: str) -> str:
    """SQL: epoch microseconds within the range the reader was given (set on its connection)."""
    return f"({us} BETWEEN getvariable('pql_earliest_us') AND getvariable('pql_latest_us'))"


_TIMES = ("timestamp", "originalTimestamp", "sentAt")

_LINE_FILTER = "line <> '' AND NOT contains(line, '\\u0000') AND NOT contains(line, chr(0))"

#: Batch requests: each line parsed once into its parts and messages (each field a JSON value),
#: with the keys of the body and of every message (a repeated key is read differently by
#: DuckDB, which keeps the first, and orjson, which keeps the last: such messages are left to
#: the reference). One statement without filters on computed values, so that DuckDB neither
#: evaluates a parse twice nor stops streaming.
_BATCH_ITEMS = f"""
SELECT k, prefix, s, received, t_batch, forced, line_ok, unnest(items) AS mi
FROM (
    SELECT k, prefix, j.s AS s, {_time(_string("j.r"))} AS received,
        CASE WHEN {_blank("j.b.sentAt")} THEN NULL
             ELSE coalesce({_time(_string("j.b.sentAt"))}, -1) END AS t_batch,
        NULL::VARCHAR AS forced,
        (j.e IN ('"batch"', '"import"') AND len(j.b.batch) = len(message_keys)
         AND list_unique(body_keys) = len(body_keys)
         AND ({_absent("j.b.context")} OR (left(j.b.context, 1) = '{{'
              AND NOT list_contains(json_keys(j.b.context), 'groupId')))) AS line_ok,
        list_transform(j.b.batch,
            (m, i) -> {{'m': m, 'keys': message_keys[i], 'i': i - 1}}) AS items
    FROM (
        SELECT k, prefix, from_json(line, '{_LINE}') AS j, json_keys(line, '$.b') AS body_keys,
               json_keys(line, '$.b.batch[*]') AS message_keys
        FROM lines WHERE {_LINE_FILTER}
    )
)
"""
_BATCH_MESSAGES = f"""
SELECT k, prefix, s, received, t_batch, forced, line_ok, mi.i AS i, mi.keys AS keys, mi.m AS m
FROM ({_BATCH_ITEMS})
"""
#: Single-message requests (/v1/track, /v1/page, /v1/screen): the body is the message.
_SINGLE_MESSAGES = f"""
SELECT k, prefix, j.s AS s, {_time(_string("j.r"))} AS received, NULL::BIGINT AS t_batch,
    j.e ->> '$' AS forced,
    j.e IN ('"track"', '"page"', '"screen"') AS line_ok, 0 AS i, keys, j.b AS m
FROM (
    SELECT k, prefix, from_json(line, '{_SINGLE_LINE}') AS j, json_keys(line, '$.b') AS keys
    FROM single_lines WHERE {_LINE_FILTER}
)
"""


def _quoted(name: str) -> str:
    return '"' + name + '"'


#: The text fields of a message, as text ("s_<field>"), and its times, as epoch
#: microseconds ("t_<field>"; -1 for a time that is there and cannot be read).
_TEXT_COLUMNS = ", ".join(
    _string("m." + x) + " AS " + _quoted("s_" + x)
    for x in ("messageId", "userId", "anonymousId", "previousId", "event", "name")
)
_TIME_COLUMNS = ", ".join(
    "CASE WHEN " + _blank("m." + x) + " THEN NULL ELSE coalesce("
    + _time(_string("m." + x)) + ", -1) END AS " + _quoted("t_" + x)
    for x in _TIMES
)  # fmt: skip
_TIMES_OK = " AND ".join(
    "(" + _quoted("t_" + x) + " IS NULL OR " + _in_range(_quoted("t_" + x)) + ")" for x in _TIMES
)
_IDS_OK = " AND ".join(
    "(" + _absent("m." + x) + " OR " + _kept(_quoted("s_" + x)) + ")"
    for x in ("userId", "anonymousId", "previousId")
)


#: SQL: the message's context names a groupId (DuckDB writes the JSON it extracts minified, its
#: keys unescaped): the rare context the costlier checks read.
_GROUPED = "(starts_with(m.context, '{') AND contains(m.context, '\"groupId\":'))"


def _rows(messages: str) -> str:
    """SQL: the event rows of ``messages``, and whether each is one this path reads exactly."""
    fields = f"""
    SELECT k, prefix, i, keys, m, t_batch, s, line_ok, received,
        {_string("s")} AS source,
        coalesce(forced, {_string("m.type")}) AS type,
        {_TEXT_COLUMNS},
        {_TIME_COLUMNS},
        CASE WHEN {_GROUPED} THEN json_extract(m.context, '$.groupId') END AS group_json,
        CASE WHEN left(m.properties, 1) = '{{' THEN json_keys(m.properties) END AS property_keys
    FROM ({messages})
    """
    checked = f"""
    SELECT k, prefix, i, type, source, received, "s_messageId", "s_userId", "s_anonymousId",
        "s_previousId", s_event, s_name, {_string("group_json")} AS s_group,
        coalesce("t_timestamp", "t_originalTimestamp") AS original,
        coalesce("t_sentAt", t_batch) AS sent,
        CASE WHEN {_absent("m.properties")} THEN '{{}}' ELSE m.properties END::VARCHAR AS properties,
        coalesce(
            line_ok AND len(keys) > 0 AND {_READ_ONCE}
            AND type IN ('track', 'page', 'screen')
            AND left(s, 1) = '"' AND {_in_range("received")}
            AND (t_batch IS NULL OR {_in_range("t_batch")})
            AND {_TIMES_OK}
            AND ({_absent("m.context")} OR (starts_with(m.context, '{{')
                 AND CASE WHEN {_GROUPED} THEN NOT regexp_matches(m.context, '"groupId":.*"groupId":')
                          ELSE true END))
            AND ({_blank("m.messageId")} OR {_kept('"s_messageId"')})
            AND {_IDS_OK}
            AND ({_absent("group_json")} OR {_kept(_string("group_json"))})
            AND ("s_userId" IS NOT NULL OR "s_anonymousId" IS NOT NULL)
            AND CASE WHEN type = 'track' THEN {_kept("s_event")}
                     ELSE ({_blank("m.name")} OR {_kept("s_name")}) END
            AND ({_absent("m.properties")} OR (property_keys IS NOT NULL
                 AND list_unique(property_keys) = len(property_keys)
                 AND NOT regexp_matches(m.properties, '.[{{]|[0-9]{{16}}|[0-9][eE]'))),
            false) AS fast
    FROM ({fields})
    """
    timed = f"""
    SELECT *, CASE WHEN original IS NULL THEN received WHEN sent IS NULL THEN original
                   ELSE received - (sent - original) END AS ts
    FROM ({checked})
    """
    return f"""
    SELECT k, k * 10000 + i AS seq, coalesce(fast AND {_in_range("ts")}, false) AS fast,
        CASE WHEN "s_messageId" <> '' THEN "s_messageId" ELSE 'pql-' || prefix || '-' || i END
            AS message_id,
        source, "s_userId" AS user_id, "s_anonymousId" AS anonymous_id,
        "s_previousId" AS previous_id, s_group AS account_id,
        CASE type WHEN 'track' THEN s_event
                  WHEN 'page' THEN 'Page Viewed' || coalesce(': ' || nullif(s_name, ''), '')
                  ELSE 'Screen Viewed' || coalesce(': ' || nullif(s_name, ''), '') END AS event,
        make_timestamp(ts) AS "timestamp", make_timestamp(received) AS received_at, properties
    FROM ({timed})
    """


_BATCH_SQL = _rows(_BATCH_MESSAGES)
_SINGLE_SQL = _rows(_SINGLE_MESSAGES)


def _epoch_us(when: datetime) -> int:
    return int((when - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


class SegmentLines:
    """A reader of logged Segment requests: times outside [earliest, latest] are not read."""

    def __init__(self, earliest: datetime, latest: datetime):
        self.con = scratch()
        self.con.execute(f"SET VARIABLE pql_earliest_us = {_epoch_us(earliest)}")
        self.con.execute(f"SET VARIABLE pql_latest_us = {_epoch_us(latest)}")

    def read(self, lines: pa.Table, single_lines: pa.Table | None) -> pa.Table:
        """The rows of ``lines`` (k, prefix, line), and of ``single_lines`` (the same columns:
        the lines holding one message rather than a batch), in the lines' order (seq)."""
        self.con.register("lines", lines)
        try:
            rows = self.con.execute(_BATCH_SQL).to_arrow_table()
            if single_lines is not None and single_lines.num_rows:
                self.con.register("single_lines", single_lines)
                singles = self.con.execute(_SINGLE_SQL).to_arrow_table()
                rows = (
                    pa.concat_tables([rows, singles]).sort_by("seq") if rows.num_rows else singles
                )
        finally:
            self.con.unregister("lines")
            self.con.unregister("single_lines")
        return rows

    def errors(self) -> tuple[type[BaseException], ...]:
        import duckdb

        return (duckdb.Error,)

    def close(self) -> None:
        self.con.close()


__all__ = ["SegmentLines"]
