"""Use cases: what pqlkit does, as plain functions that return typed results.

The CLI, the collector's server and (next) the web app all call these; none of them does
engine work of its own. Each function takes plain values (paths, URLs, dates as text or
datetimes), raises :class:`~pqlkit.errors.PqlkitError` subclasses for anything a user can fix,
and returns a dataclass with ``to_dict()`` for programs.

    scoring      validate, score, accounts, explain, compile_sql, init_model
    validating   validate_cold: `pql validate`, its data checks stored and run without Ibis
    collecting   import_events, forget_users, write_keys, collector
    learning     learn, evaluate, backtest, report
    demo         run_demo

Submodules are imported on use: `import pqlkit.usecases` loads nothing heavy.
"""
