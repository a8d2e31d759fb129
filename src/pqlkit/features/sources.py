"""Bind the model's sources to canonical Ibis tables, and check the data fits.

Every column the model maps is checked before anything runs: a missing column names the
table, the column and the columns present. Types are normalised: ids to text, timestamps to
UTC (naive), numbers to numbers, JSON properties to JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from ..errors import MappingError
from ..model.conditions import Condition, FieldCondition, walk
from ..model.defaults import effective_segments
from ..model.load import LoadedModel
from ..model.spec import CANONICAL_COLUMNS, Source
from .findings import suggest
from .names import ROLES

TIMESTAMP_COLUMNS = {
    "events": ("timestamp",),
    "users": ("created_at",),
    "outcomes": ("created_at", "closed_at"),
    "identities": ("linked_at",),
}
ID_COLUMNS = {
    "events": ("message_id", "user_id", "anonymous_id", "account_id", "event"),
    "users": ("user_id", "account_id", "email", "plan", "role"),
    "accounts": ("account_id", "domain", "plan", "industry", "name", "country"),
    "outcomes": ("outcome_id", "account_id", "user_id", "stage", "kind"),
    "identities": ("id", "user_id"),
}
NUMERIC_COLUMNS = {"accounts": ("employees", "seats"), "outcomes": ("amount",)}
#: Fields the features layer derives for every user; rules may use them like columns.
DERIVED_USER_FIELDS = (
    "email_domain",
    "is_business_email",
    "is_paid",
    "sales_touched",
    "days_since_signup",
    "days_since_seen",
)


class Reader(Protocol):
    """What binding and checking need of a backend (every backend in `backends/` is one)."""

    def has_table(self, name: str) -> bool: ...

    def table(self, name: str, *, role: str = "") -> ir.Table: ...

    def read_file(self, path: Path | str, fmt: str, *, role: str) -> ir.Table: ...

    def rows(self, expr: ir.Expr) -> list[dict[str, Any]]: ...


@dataclass
class Bound:
    """The canonical tables for one run."""

    events: ir.Table
    users: ir.Table
    accounts: ir.Table | None
    outcomes: ir.Table | None
    identities: ir.Table | None = None
    text_timestamps: list[tuple[str, str, ir.Table]] = field(default_factory=list)
    """(role, column, table before parsing) for timestamps stored as text, to check parsing."""
    narrowers: dict[str, Callable[[str, ir.Value], ir.Table | None]] = field(
        default_factory=dict, repr=False
    )
    """Per role: the canonical table over the source's rows whose own column equals a value."""

    def where(self, role: str, column: str, value: ir.Value | str) -> ir.Table:
        """The rows of ``role`` whose canonical ``column`` equals ``value``. The source's own
        column is compared first, before it is made canonical (an empty id made NULL, a
        number made text), so that the database can test it as it scans, and skip the rest:
        a user's row out of a million is read in milliseconds rather than scanned whole. The
        canonical comparison stays, so the rows are exactly those of the plain filter."""
        table: ir.Table = getattr(self, role)
        narrow = self.narrowers.get(role)
        value = ibis.literal(value) if isinstance(value, str) else value
        narrowed = narrow(column, value) if narrow is not None else None
        if narrowed is not None:
            table = narrowed
        return table.filter(table[column] == value)


def bind(backend: Reader, loaded: LoadedModel) -> Bound:
    """Canonical tables for the model's sources; raises MappingError on missing columns."""
    sources = loaded.model.sources
    tables: dict[str, ir.Table | None] = {}
    text_ts: list[tuple[str, str, ir.Table]] = []
    narrowers: dict[str, Callable[[str, ir.Value], ir.Table | None]] = {}
    for role in ROLES:
        source: Source | None = getattr(sources, role)
        if source is None or (
            role == "identities"
            and "identities" not in sources.model_fields_set
            and source.table is not None
            and not backend.has_table(source.table)
        ):
            tables[role] = None  # the default identities table is used only once it exists
            continue
        try:
            raw = _open(backend, source, role, loaded.base_dir)
        except MappingError as exc:  # say where in the model the table or file is named
            raise MappingError(
                f"{loaded.path}:{loaded.line_of(('sources', role))}: {exc}"
            ) from None
        tables[role], texts = _canonical(raw, source, role, loaded)
        text_ts.extend(texts)
        narrowers[role] = _narrower(raw, source, role, loaded)
    bound = Bound(text_timestamps=text_ts, narrowers=narrowers, **tables)
    _check_referenced_fields(bound, loaded)
    return bound


def _narrower(
    raw: ir.Table, source: Source, role: str, loaded: LoadedModel
) -> Callable[[str, ir.Value], ir.Table | None]:
    """For :meth:`Bound.where`: the canonical table over the rows of ``raw`` whose own text
    column equals the value, for an id column (made canonical by at most NULLIF(x, ''),
    which a row it keeps passes only with x equal to the value); None for any other."""

    def narrow(column: str, value: ir.Value) -> ir.Table | None:
        theirs = {**source.columns, **source.traits}.get(column, column)
        if column not in ID_COLUMNS.get(role, ()) or theirs not in raw.columns:
            return None
        if not raw[theirs].type().is_string():
            return None
        return _canonical(raw.filter(raw[theirs] == value), source, role, loaded)[0]

    return narrow


def _open(backend: Reader, source: Source, role: str, base_dir: Path) -> ir.Table:
    if source.table is not None:
        return backend.table(source.table, role=role)
    text = source.path or ""
    if "://" in text or text.startswith("file:"):  # a URI: read by the database as it is
        return backend.read_file(
            text, source.format or _format_from_suffix(Path(text), role), role=role
        )
    path = Path(text)
    if not path.is_absolute():
        path = base_dir / path
    fmt = source.format or _format_from_suffix(path, role)
    return backend.read_file(path, fmt, role=role)


def _format_from_suffix(path: Path, role: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "jsonl"
    raise MappingError(
        f"sources.{role}: cannot tell the format of {path.name}; add format: "
        "parquet|csv|jsonl|delta"
    )


def _canonical(
    raw: ir.Table, source: Source, role: str, loaded: LoadedModel
) -> tuple[ir.Table, list[tuple[str, str, ir.Table]]]:
    present = list(raw.columns)
    where = f"{loaded.path}:{loaded.line_of(('sources', role))}"
    name = source.table or source.path
    canon = CANONICAL_COLUMNS[role]
    for key, ours, theirs in [
        *(("columns", c, t) for c, t in source.columns.items()),
        *(("traits", c, t) for c, t in source.traits.items()),
    ]:
        if key == "columns" and ours not in canon:
            raise MappingError(
                f"{where}: sources.{role}.columns: {ours!r} is not a canonical {role} column "
                f"({', '.join(canon)}); other columns need no mapping and are kept as traits"
            )
        if key == "traits" and ours in canon:
            raise MappingError(
                f"{where}: sources.{role}.traits: {ours!r} is a canonical {role} column; map "
                f"it under sources.{role}.columns instead"
            )
        if theirs not in present:
            raise MappingError(
                f"{where}: sources.{role}.{key}.{ours}: column {theirs!r} is not in {role} "
                f"({name}); columns present: {', '.join(present)}" + suggest(theirs, present)
            )
        if key == "traits" and ours in present and ours != theirs:
            raise MappingError(
                f"{where}: sources.{role}.traits.{ours}: {role} ({name}) already has a column "
                f"{ours!r}; choose another name"
            )
    renames = {
        canonical: theirs
        for canonical, theirs in {**source.columns, **source.traits}.items()
        if canonical != theirs
    }
    mapped_from = set(renames.values())
    keep = [c for c in present if c not in mapped_from and c not in renames]
    table = raw.select(*keep, **{c: raw[theirs] for c, theirs in renames.items()})
    for column, required in canon.items():
        if column in table.columns:
            continue
        if required:
            raise MappingError(
                f"{where}: the {role} table ({name}) has no column {column!r}; columns present: "
                f"{', '.join(present)}"
                + suggest(column, present)
                + f"; map yours with sources.{role}.columns: {{{column}: <your column>}}"
            )
        table = table.mutate(**{column: ibis.null(default_type(role, column))})
    fixes = {}
    for column in ID_COLUMNS.get(role, ()):
        text = table[column] if table[column].type().is_string() else table[column].cast("string")
        # An empty id is a missing id. Events are left as they are (no per-event cost): an
        # empty user_id groups into a user that the users table does not have.
        if column.endswith("_id") and role != "events":
            text = text.nullif("")
        if text is not table[column]:
            fixes[column] = text
    for column in NUMERIC_COLUMNS.get(role, ()):
        if not table[column].type().is_numeric():
            fixes[column] = table[column].cast("float64")
    for column in TIMESTAMP_COLUMNS.get(role, ()):
        fixes[column] = utc_timestamp(table[column])
    if role == "events" and not table.properties.type().is_json():
        prop_type = table.properties.type()
        if prop_type.is_string() or prop_type.is_null():
            fixes["properties"] = table.properties.cast("json")
        elif prop_type.is_struct() or prop_type.is_map():
            fixes["properties"] = table.properties.cast("string").cast("json")
    if role == "accounts" and table.tech_stack.type().is_null():
        fixes["tech_stack"] = ibis.null(dt.Array(dt.string))
    texts = [
        (role, c, table) for c in TIMESTAMP_COLUMNS.get(role, ()) if table[c].type().is_string()
    ]
    return (table.mutate(**fixes) if fixes else table), texts


def default_type(role: str, column: str) -> str:
    if column in TIMESTAMP_COLUMNS.get(role, ()):
        return "timestamp"
    if column in NUMERIC_COLUMNS.get(role, ()):
        return "float64"
    if column == "properties":
        return "json"
    if column == "tech_stack":
        return "array<string>"
    return "string"


def utc_timestamp(col: ir.Value) -> ir.Value:
    """Any timestamp-like column as a naive UTC timestamp (sessions run in UTC)."""
    t = col.type()
    if t.is_timestamp():
        return col.cast(dt.Timestamp()) if t.timezone else col
    if t.is_date():
        return col.cast(dt.Timestamp())
    if t.is_integer() or t.is_floating():
        # epoch milliseconds are told from seconds by size (1e11 s is the year 5138)
        return _from_epoch(ibis.ifelse(col.abs() > 100_000_000_000, col / 1000.0, col * 1.0))
    if t.is_string():
        return col.cast(dt.Timestamp(timezone="UTC")).cast(dt.Timestamp())
    return col.cast(dt.Timestamp())


def _from_epoch(seconds: ir.NumericValue) -> ir.Value:
    return ibis.timestamp("1970-01-01 00:00:00") + (seconds * 1_000_000).cast("int64").as_interval(
        "us"
    )


def _check_referenced_fields(bound: Bound, loaded: LoadedModel) -> None:
    model = loaded.model
    places: list[tuple[tuple[str | int, ...], Condition]] = []
    for i, p in enumerate(model.icp.profiles):
        places.append((("icp", "profiles", i, "when"), p.when))
    for i, e in enumerate(model.icp.exclusions):
        places.append((("icp", "exclusions", i, "when"), e.when))
    for i, s in enumerate(model.fit_signals):
        places.append((("fit_signals", i, "when"), s.when))
    places.append((("activation",), model.activation))
    for i, seg in enumerate(effective_segments(model)):
        if seg.when is not None:
            places.append((("segments", i, "when"), seg.when))
    for i, r in enumerate(model.routing.rules):
        places.append((("routing", "rules", i, "when"), r.when))
    columns = {
        "user": [*bound.users.columns, *DERIVED_USER_FIELDS],
        "account": list(
            bound.accounts.columns if bound.accounts is not None else CANONICAL_COLUMNS["accounts"]
        ),
    }
    problems = []
    types = _field_types(bound)
    for base, cond in places:
        for path, leaf in walk(cond, base):
            if not isinstance(leaf, FieldCondition):
                continue
            if leaf.namespace in columns and leaf.name not in columns[leaf.namespace]:
                known = columns[leaf.namespace]
                issue = loaded.issue(
                    (*path, "field"),
                    f"{leaf.field}: the {leaf.namespace}s table has no column {leaf.name!r}",
                    (suggest(leaf.name, known).strip(" ()") or "columns: " + ", ".join(known)),
                )
                problems.append(str(issue))
                continue
            kind = types.get(leaf.field) or types.get(f"{leaf.namespace}.*")
            wrong = _incomparable(kind, leaf.operator, leaf.operand) if kind else None
            if wrong:
                problems.append(
                    str(
                        loaded.issue(
                            (*path, leaf.operator),
                            f"{leaf.field} holds {kind}; {wrong}",
                            "compare it with a value of its type",
                        )
                    )
                )
    if problems:
        raise MappingError("\n".join(sorted(set(problems))))


def _kind(dtype: dt.DataType) -> str:
    if dtype.is_boolean():
        return "true/false values"
    if dtype.is_numeric():
        return "numbers"
    if dtype.is_string():
        return "text"
    if dtype.is_timestamp() or dtype.is_date():
        return "times"
    if dtype.is_array():
        return "lists"
    return str(dtype)


def _field_types(bound: Bound) -> dict[str, str]:
    """What each field a condition may name holds (user.*, account.*, signal.*, ...)."""
    out: dict[str, str] = {
        "signal.*": "numbers",
        "score.*": "numbers",
        "user.email_domain": "text",
        "user.is_business_email": "true/false values",
        "user.is_paid": "true/false values",
        "user.sales_touched": "true/false values",
        "user.days_since_signup": "numbers",
        "user.days_since_seen": "numbers",
        "user.plan": "text",
        "decision.profile": "text",
        "decision.exclusion": "text",
        "decision.tier": "text",
        "decision.segment": "text",
        "decision.excluded": "true/false values",
        "decision.activated": "true/false values",
        "decision.is_pql": "true/false values",
    }
    for ns, table in (("user", bound.users), ("account", bound.accounts)):
        if table is not None:
            for name, dtype in table.schema().items():
                out.setdefault(f"{ns}.{name}", _kind(dtype))
    return out


def _incomparable(kind: str, op: str, operand: object) -> str | None:
    """Why ``op operand`` cannot be asked of a field holding ``kind`` (None: it can)."""
    if op == "is_set":
        return None
    if op in ("contains", "matches"):
        return (
            None
            if kind in ("text", "lists") or (op == "contains" and kind == "lists")
            else f"`{op}` needs text"
        )
    if op in ("gte", "gt", "lte", "lt", "between"):
        return None if kind == "numbers" else f"`{op}` compares numbers"
    values = operand if isinstance(operand, list) else [operand]
    for v in values:
        want = (
            "true/false values"
            if isinstance(v, bool)
            else "numbers"
            if isinstance(v, int | float)
            else "text"
        )
        if want != kind and not (want == "text" and kind == "times"):
            return f"`{op}: {v!r}` compares it with {want}"
    return None
