"""Fuzzing the collector and the model loader with generated hostile input.

`make test` runs a bounded number of examples; the long runs (the issue's acceptance figures)
are the collector's behind PQLKIT_FUZZ_LONG=1 and the model files' behind the `long` marker:

    PQLKIT_FUZZ_LONG=1 .venv/bin/python -m pytest tests/test_fuzz.py -s
    .venv/bin/python -m pytest tests/test_fuzz.py -m long -k model -n 2 -rP

Collector: every request gets an answer below 500, and every acknowledged message is stored
(nothing quarantined: the request path applies the flusher's rules). Bodies come from
tests/fuzz_bodies.py, driven by hypothesis (which shrinks a failure to a small example).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz_bodies import body

LONG = os.environ.get("PQLKIT_FUZZ_LONG") == "1"
BODIES = 100_000 if LONG else 1_500


class InProcess:
    """The collector's ASGI app called directly (the HTTP layer is uvicorn's)."""

    def __init__(self, tmp: Path):
        from pqlkit.server.app import Collector

        self.app = Collector(
            str(tmp / "f.duckdb"), tmp / "log", {"web": "wk_web"}, resolve_interval=3600
        )
        self.app.start()
        self.loop = asyncio.new_event_loop()
        self.statuses: dict[int, int] = {}

    def post(self, endpoint: str, raw: bytes, headers: dict[str, str]) -> int:
        sent: list[dict] = []
        scope = {
            "type": "http",
            "method": "POST",
            "path": f"/v1/{endpoint}",
            "headers": [(b"authorization", b"Basic d2tfd2ViOg==")]
            + [(k.encode(), v.encode()) for k, v in headers.items()],
        }
        chunks = [raw[i : i + 4096] for i in range(0, len(raw), 4096)] or [b""]
        queue = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]

        async def receive():
            return queue.pop(0)

        async def send(message):
            sent.append(message)

        self.loop.run_until_complete(self.app(scope, receive, send))
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, f"{len(starts)} responses to one request"
        status = starts[0]["status"]
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status

    def close(self) -> None:
        self.app.stop()
        self.loop.close()


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    c = InProcess(tmp_path_factory.mktemp("fuzz"))
    yield c
    c.close()


_counter = iter(range(10**9))


@settings(
    max_examples=BODIES,
    deadline=None,
    database=None,
    derandomize=not LONG,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_no_generated_request_gets_a_5xx(collector, seed):
    endpoint, raw, headers = body(random.Random(seed), next(_counter))
    status = collector.post(endpoint, raw, headers)
    assert status < 500, (seed, endpoint, raw[:300], headers)


def test_every_acknowledged_message_is_stored(collector):
    """Runs after the fuzzing above (same module, same collector)."""
    accepted = collector.app.accepted
    assert accepted > 0
    collector.close()
    with duckdb.connect(collector.app.url, read_only=True) as con:
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        messages = con.execute("SELECT count(*) FROM pql_messages").fetchone()[0]
        quarantined = con.execute("SELECT count(*) FROM pql_quarantine").fetchone()[0]
    print(
        f"\ncollector fuzz: {sum(collector.statuses.values())} requests, statuses {sorted(collector.statuses.items())}, "
        f"{accepted} messages acknowledged, {events} events + {messages} messages stored, {quarantined} quarantined"
    )
    assert quarantined == 0
    assert events + messages == accepted


# --- model files -------------------------------------------------------------------------------

MODELS, LONG_MODELS = 300, 10_000
#: Seconds of CPU one model may take to load and score before it counts as a hang (a valid model
#: takes 0.2 s, the first one 1.3 s), and of wall time, for a hang that waits without computing.
#: CPU time, because on a machine shared with other runs wall time was eight times as long:
#: a wall-clock limit of 10 s counted 17 of 300 valid models as hangs at a load average of 25.
MODEL_CPU_SECONDS, MODEL_WALL_SECONDS = 10.0, 120.0


class ModelOutcome:
    VALID, LOCATED, UNLOCATED, BUG, HANG = (
        "valid",
        "located error",
        "error without a location",
        "bug",
        "hang",
    )


def _judge(raw: bytes, folder: Path, backend) -> tuple[str, str]:
    """Load a model file and, when valid, score a small world with it, as `pql score` does."""
    import re
    import signal

    from pqlkit.engine import Engine
    from pqlkit.errors import ModelValidationError, PqlkitError
    from pqlkit.model.load import load_model

    path = folder / "pql.yml"
    path.write_bytes(raw)

    fired = []

    def timeout(*_):
        fired.append(True)
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, timeout), signal.signal(signal.SIGPROF, timeout)
    signal.setitimer(signal.ITIMER_REAL, MODEL_WALL_SECONDS)
    signal.setitimer(signal.ITIMER_PROF, MODEL_CPU_SECONDS)  # the process's CPU, all threads
    try:
        loaded = load_model(path)
        Engine(loaded, backend).run("2026-10-01")
        return ModelOutcome.VALID, ""
    except ModelValidationError as exc:
        if exc.issues and all(issue.line > 0 for issue in exc.issues):
            return ModelOutcome.LOCATED, str(exc)
        return ModelOutcome.UNLOCATED, str(exc)
    except PqlkitError as exc:
        if fired:
            return ModelOutcome.HANG, ""
        located = re.search(r"pql\.yml:\d+", str(exc)) is not None
        return (ModelOutcome.LOCATED if located else ModelOutcome.UNLOCATED), str(exc)
    except TimeoutError:
        return ModelOutcome.HANG, ""
    except RecursionError as exc:
        return ModelOutcome.BUG, f"RecursionError: {exc}"
    except Exception as exc:
        import traceback

        if fired:  # the TimeoutError came out wrapped in another exception
            return ModelOutcome.HANG, ""
        return ModelOutcome.BUG, "".join(traceback.format_exception(exc))[-1500:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGALRM, old[0])
        signal.signal(signal.SIGPROF, old[1])


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    from pqlkit.backends import connect
    from pqlkit.demo.generate import DemoSize, generate
    from pqlkit.demo.load import load

    from .conftest import DEMO_END

    backend = connect(str(tmp_path_factory.mktemp("world") / "m.duckdb"))
    load(backend, generate(DemoSize(accounts=8, users=30, days=20, seed=5), end=DEMO_END))
    yield backend
    backend.close()


def _fuzz_models(count: int, seed: int, folder: Path, backend) -> None:
    import time
    from collections import Counter

    from pqlkit.demo.load import starter_text

    from .model_mutations import mutate

    rng = random.Random(seed)
    starter = starter_text()
    outcomes: Counter[str] = Counter()
    failures = []
    started = time.monotonic()
    for _ in range(count):
        raw = mutate(rng, starter)
        outcome, detail = _judge(raw, folder, backend)
        outcomes[outcome] += 1
        if outcome in (ModelOutcome.BUG, ModelOutcome.HANG, ModelOutcome.UNLOCATED):
            failures.append((outcome, detail, raw))
    print(
        f"\nmodel fuzz (seed {seed}): {count} mutated models in {time.monotonic() - started:.0f} s:"
        f" {dict(outcomes)}"
    )
    for outcome, detail, raw in failures[:5]:
        print(f"--- {outcome}\n{detail}\n{raw[:300]!r}")
    assert not failures, f"{len(failures)} of {count}: " + "; ".join(
        sorted({f[0] for f in failures})
    )


def test_mutated_models_end_in_a_result_or_a_located_error(tmp_path, small_world):
    _fuzz_models(MODELS, 0, tmp_path, small_world)


@pytest.mark.long
@pytest.mark.parametrize("half", [0, 1])  # two halves, so `-n 2` runs them side by side
def test_ten_thousand_mutated_models_end_in_a_result_or_a_located_error(
    tmp_path, small_world, half
):
    seed = int(os.environ.get("PQLKIT_FUZZ_SEED", random.randrange(2**32))) + half
    _fuzz_models(LONG_MODELS // 2, seed, tmp_path, small_world)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # found by the model fuzzer: each ended as a bug or an error without a location
        (
            "{signal: onboarded}",
            "{field: user.is_paid, equals: 0.5}",
            "user.is_paid holds true/false",
        ),
        ("{signal: onboarded}", "{field: account.industry, gte: 3}", "`gte` compares numbers"),
        (
            "{signal: onboarded}",
            "{field: account.employees, equals: many}",
            "compares it with text",
        ),
        ("'\\.edu$'", "'*edu'", "is not a regular expression"),
        ("'\\.edu$'", "'(?=x)edu'", "lookahead is not supported by every database"),
        ("pql_score: 60", "pql_score: " + "9" * 30, "out of range"),
        ("window: 30d", "window: 0d", "not a positive duration"),
        ("{table: users}", "{table: 'a.b.c'}", "cannot read table 'a.b.c'"),
        ("{table: users}", "{table: 'k\"e'}", "does not exist"),
        # issue 27: each passed validation, then failed scoring without a line
        ("'\\.edu$'", '"\\\\.edu\\0$"', "a NUL character (U+0000)"),
        ("equals: enterprise", 'equals: "enter\\x01prise"', "a control character (U+0001)"),
        ("points: 10", 'points: "NaN"', "'NaN' is not a number that can be scored"),
        ("pql_score: 60", 'pql_score: "-Infinity"', "is not a number that can be scored"),
        ("cap: 20", "cap: '1e400'", "is not a number that can be scored"),
        # issue 27: internal errors (PyYAML's ReaderError) before
        ("# Where", "# Wh\x00ere", "a NUL character (U+0000) at column 5"),
        ("name: starter", "name: star\x9fter", "a C1 control character (U+009F) at column 11"),
    ],
)
def test_what_the_model_fuzzer_found_is_a_located_error(tmp_path, small_world, old, new, message):
    from pqlkit.demo.load import starter_text

    text = starter_text()
    assert old in text
    raw = text.replace(old, new, 1).encode("utf-8")
    outcome, detail = _judge(raw, tmp_path, small_world)
    assert outcome == ModelOutcome.LOCATED, detail
    assert message in detail and "pql.yml:" in detail
