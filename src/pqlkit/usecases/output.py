"""Writing a command's rows out: to a file by its format, or as CSV or JSON lines to a stream
(the CLI's `--out` and `--format`), through :mod:`pqlkit.sinks.files`."""

from ..sinks.files import arrow, export, format_from_path, write_csv, write_json

__all__ = ["arrow", "export", "format_from_path", "write_csv", "write_json"]
