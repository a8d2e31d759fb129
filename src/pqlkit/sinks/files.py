"""Export results as CSV, Parquet or JSON lines, atomically: a failed export leaves no file."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date, datetime
from pathlib import Path

import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import ExportError

FORMATS = ("csv", "parquet", "jsonl", "json")


def format_from_path(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = {"pq": "parquet", "ndjson": "jsonl"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise ExportError(
            f"cannot tell the export format of {path}; use a .csv, .parquet, .jsonl or .json "
            "file name, or pass --format"
        )
    return fmt


def arrow(expr: ir.Table) -> pa.Table:
    """The rows of ``expr`` as Arrow, through the backend that built it."""
    from ..backends import arrow_of

    return arrow_of(expr)


def export(
    expr: ir.Table | pa.Table,
    path: str | Path,
    fmt: str | None = None,
    *,
    csv_formulas: bool = False,
) -> int:
    """Write ``expr`` to ``path``; return the number of rows written. In CSV, text that a
    spreadsheet would run as a formula is neutralised unless ``csv_formulas`` (see
    :func:`neutralise_formulas`)."""
    target = Path(path)
    fmt = fmt or format_from_path(target)
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not target.parent.exists():
        raise ExportError(f"cannot write {target}: folder {target.parent} does not exist")
    data = expr if isinstance(expr, pa.Table) else arrow(expr)
    if target.exists() and not target.is_file():
        # a device or pipe (/dev/stdout, /dev/null): write straight to it; never rename over it
        _write(data, str(target), fmt, csv_formulas)
        return data.num_rows
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        _write(data, tmp, fmt, csv_formulas)
        os.replace(tmp, target)
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return data.num_rows


def _write(data: pa.Table, path: str, fmt: str, csv_formulas: bool = False) -> None:
    if fmt == "parquet":
        pq.write_table(data, path)
    elif fmt == "csv":
        write_csv(data, path, csv_formulas=csv_formulas)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            write_json(data, fh, lines=fmt == "jsonl")


def write_json(data: pa.Table, fh, *, lines: bool) -> None:
    rows = data.to_pylist()
    if lines:
        for row in rows:
            fh.write(json.dumps(row, default=_json_default) + "\n")
    else:
        json.dump(rows, fh, default=_json_default, indent=2)
        fh.write("\n")


def _json_default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


#: What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(data: pa.Table) -> pa.Table:
    """Text cells that start like a formula get a leading apostrophe, as OWASP recommends, so
    Excel, LibreOffice and Google Sheets show them as text (`=HYPERLINK(...)` in a trait or a
    reason would otherwise run when a rep opens the export). Numbers are left alone."""
    cols = []
    for name in data.column_names:
        col = data.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            starts = pc.starts_with(col, FORMULA_START[0])
            for prefix in FORMULA_START[1:]:
                starts = pc.or_(starts, pc.starts_with(col, prefix))
            col = pc.if_else(
                pc.fill_null(starts, False), pc.binary_join_element_wise("'", col, ""), col
            )
        cols.append(col)
    return pa.table(dict(zip(data.column_names, cols, strict=True)))


def write_csv(data: pa.Table, sink, *, csv_formulas: bool = False) -> None:
    """CSV with list columns joined by ';' and formula-like text neutralised (unless
    ``csv_formulas``)."""
    flat = flatten_lists(data)
    pacsv.write_csv(flat if csv_formulas else neutralise_formulas(flat), sink)


def flatten_lists(data: pa.Table) -> pa.Table:
    cols = []
    for name in data.column_names:
        col = data.column(name)
        if pa.types.is_list(col.type):
            col = pa.array([None if v is None else ";".join(map(str, v)) for v in col.to_pylist()])
        cols.append(col)
    return pa.table(dict(zip(data.column_names, cols, strict=True)))
