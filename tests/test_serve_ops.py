"""Operating the one-process system: CRM syncs on the model's schedules inside `pql serve
--model --ui` (both ways, against the local HubSpot fake; a failing sync is logged and tried
again, never stopping the server; /health and /metrics show each one's last sync and lag),
and JSON-lines logs from every part of it (`--log-format json`)."""

from __future__ import annotations

import json
import logging
import os

import httpx
import pytest

from pqlkit import logs
from pqlkit.backends import connect
from pqlkit.errors import PqlkitError
from pqlkit.model.crm import SyncSchedule

from .fakes import Running
from .fakes.hubspot import FakeHubSpot
from .serve import METRICS_AUTH, Serve
from .test_live_serve import MODEL, _send, _wait

HOOK = '    - {id: sales_hook, kind: webhook, url: "RECEIVER", secret_env: PQL_TEST_HOOK_SECRET, timeout: 8s}'


def _scheduled_model(hub_url: str) -> str:
    """The live model, its webhook pointing nowhere (deliveries fail and say so) and a HubSpot
    destination no route names: only its schedule writes to it and reads from it."""
    hubspot = (
        f'    - {{id: hubspot, kind: hubspot, token_env: HS_TOKEN, base_url: "{hub_url}", '
        "companies: null, every: {push: 1s, pull: 1s}}"
    )
    return MODEL.replace(HOOK, HOOK.replace("RECEIVER", "http://127.0.0.1:9/hook") + "\n" + hubspot)


def _outcomes(db: str) -> list[tuple]:
    backend = connect(db)  # takes its turn with the running server
    try:
        return backend.run_sql(
            "select user_id, stage from pql_crm_outcomes where user_id is not null"
        )
    except Exception:
        return []  # not made yet
    finally:
        backend.close()


# over 30 s on a busy machine: a whole system starts (flusher process, web app), and each
# direction must fail, then succeed, at its own 1 s schedule
def test_crm_syncs_run_on_schedule_inside_serve_and_every_line_on_stderr_is_json(tmp_path):
    hub = FakeHubSpot(calls_per_10s=10_000)
    with Running(hub.app) as fake:
        model = tmp_path / "pql.yml"
        model.write_text(_scheduled_model(fake.url))
        server = Serve(
            tmp_path,
            db="ops.duckdb",
            args=("--model", str(model), "--product-key", "pk_test", "--ui",
                  "--log-format", "json"),
            env={"HS_TOKEN": "pat-test", "PQL_TEST_HOOK_SECRET": "h" * 32,
                 "PQL_UI_SECRET": "u" * 40},
        )  # fmt: skip
        server.start()
        try:
            health = httpx.get(server.url + "/health", timeout=10).json()
            assert set(health["crm_sync"]["hubspot"]) == {"push", "pull"}

            _send(server.url, "u1", "ann@acme.io", ["signed_up", "pricing_viewed"])
            # no route names HubSpot: the scheduled push writes the new PQL there
            contact = _wait(
                lambda: next(iter(hub.objects["contacts"].values()), None), 60, "the push"
            )
            assert contact["email"] == "ann@acme.io" and contact["pql_is_pql"] == "true"
            # a deal won in HubSpot comes back as an outcome: no `pql sync` run by hand
            (contact_id,) = hub.objects["contacts"]
            hub.add_deal(
                {"dealstage": "closedwon", "hs_is_closed": "true", "hs_is_closed_won": "true",
                 "amount": "900", "createdate": "2026-09-02T10:00:00Z",
                 "closedate": "2026-09-20T10:00:00Z"},
                contacts=[contact_id],
            )  # fmt: skip
            assert _wait(lambda: _outcomes(server.db), 60, "the pull") == [("u1", "won")]

            # HubSpot refuses the token for a while: the reads fail, are logged, and the
            # server goes on; once it takes it again they succeed at their next time (a push
            # with nothing changed makes no call)
            def pull() -> dict:
                return server.metrics()["crm_sync"]["hubspot"]["pull"]

            hub.token = "pat-rotated"
            failing = _wait(lambda: (p := pull())["last_error"] and p, 30, "a failure")
            assert "HTTP 401" in failing["last_error"] and "HS_TOKEN" in failing["last_error"]
            health = httpx.get(server.url + "/health", timeout=10)
            assert health.status_code == 200  # the collector works: a CRM down is not down
            assert health.json()["crm_sync"]["hubspot"]["pull"]["ok"] is False
            hub.token = "pat-test"
            _wait(lambda: pull()["ok"], 30, "recovery")
            metrics = server.metrics()["crm_sync"]["hubspot"]
            for direction in ("push", "pull"):
                assert metrics[direction]["runs"] >= 2
                assert 0 <= metrics[direction]["lag_seconds"] < 30, metrics
            text = httpx.get(
                server.url + "/metrics",
                headers={**METRICS_AUTH, "accept": "text/plain"},
                timeout=10,
            ).text
            assert 'pql_crm_sync_lag_seconds{destination="hubspot",direction="push"}' in text
            assert 'pql_crm_sync_failures_total{destination="hubspot",direction="pull"}' in text
            # deliveries to the webhook fail (nothing listens): they say so too
            _wait(lambda: "deliveries" in server.stderr.read_text(), 30, "a delivery line")
            server.stop()
            assert server.proc is not None and server.proc.returncode == 0
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.kill()

    lines = server.stderr.read_text().splitlines()
    assert len(lines) >= 5
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    for obj in parsed:
        assert set(obj) == {"time", "level", "part", "message", "fields"}, obj
        assert obj["time"].endswith("Z") and obj["level"] in {"debug", "info", "warning", "error"}
        assert isinstance(obj["fields"], dict) and obj["message"]
    parts = {obj["part"] for obj in parsed}
    assert {"server", "flusher", "deliveries", "sync"} <= parts, parts
    failed = [o for o in parsed if o["part"] == "sync" and o["level"] == "warning"]
    assert failed and failed[0]["fields"]["destination"] == "hubspot"
    assert failed[0]["fields"]["direction"] in {"push", "pull"} and failed[0]["fields"]["error"]


def test_schedules_are_validated_where_they_are_written():
    assert SyncSchedule(push="15m").directions() == {"push": 900.0}
    assert SyncSchedule(push="1s", pull="1h").directions() == {"push": 1.0, "pull": 3600.0}
    with pytest.raises(ValueError, match="give push, pull or both"):
        SyncSchedule()
    with pytest.raises(ValueError, match="shorter than a second"):
        SyncSchedule(pull="0.5s")
    with pytest.raises(ValueError, match="extra"):
        SyncSchedule(push="1m", every="1m")


def test_a_bad_model_schedule_is_a_located_error(tmp_path):
    from pqlkit.errors import ModelError
    from pqlkit.model.load import load_model

    model = tmp_path / "pql.yml"
    model.write_text(
        _scheduled_model("http://127.0.0.1:9").replace("push: 1s, pull: 1s", "push: soon")
    )
    with pytest.raises(ModelError, match=r"every.*push"):
        load_model(model)


def test_a_failing_scheduled_sync_is_tried_again_at_its_next_time():
    from pqlkit.usecases.scheduled import Job, ScheduledSyncs

    answers: list[object] = [RuntimeError("HubSpot answered 503"), {"sent": 3}]

    def runner(job: Job) -> dict:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    job = Job("hubspot", "push", every=0.05)
    syncs = ScheduledSyncs([job], runner)
    syncs.start()
    try:
        _wait(lambda: job.last_ok_at, 10, "the second try")
    finally:
        syncs.stop()
    assert job.runs >= 2 and job.failures == 1 and job.last_error is None
    status = syncs.status()["hubspot"]["push"]
    assert status["ok"] and status["lag_seconds"] < 5
    assert set(syncs.health()["hubspot"]["push"]) == {"ok", "last_ok_at", "lag_seconds"}


def test_json_lines_carry_part_fields_and_exceptions_on_one_line():
    formatter = logs.JsonLines()
    try:
        raise ValueError("bad\nvalue")
    except ValueError as exc:
        record = logging.LogRecord("pqlkit.sync", logging.WARNING, __file__, 1, "push failed", None,
                                   (type(exc), exc, exc.__traceback__))  # fmt: skip
    record.destination = "hubspot"
    line = formatter.format(record)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["part"] == "sync" and obj["level"] == "warning" and obj["message"] == "push failed"
    assert obj["fields"]["destination"] == "hubspot"
    assert (
        obj["fields"]["error"] == "ValueError: bad\nvalue"
        and "Traceback" in obj["fields"]["traceback"]
    )
    collect = logging.LogRecord("pqlkit.collect", logging.INFO, __file__, 1, "x", None, None)
    assert json.loads(formatter.format(collect))["part"] == "flusher"


def test_an_unknown_log_format_is_refused_naming_where(monkeypatch):
    monkeypatch.setenv(logs.ENV, "xml")
    with pytest.raises(PqlkitError, match=r"\$PQLKIT_LOG_FORMAT 'xml': use text or json"):
        logs.log_format()
    with pytest.raises(PqlkitError, match="--log-format 'yaml'"):
        logs.log_format("yaml")


def test_a_server_that_cannot_start_says_why_in_a_json_line(tmp_path):
    """With --log-format json even the refusal to start is one JSON object on stderr."""
    from .test_one_system import pql

    env = {k: v for k, v in os.environ.items() if k != "PQL_WRITE_KEYS"}
    done = pql("serve", "--url", str(tmp_path / "x.duckdb"), "--log-format", "json", env=env)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    said = json.loads(line)
    assert said["level"] == "error" and said["part"] == "cli"
    assert said["message"].startswith("give at least one write key")
    assert said["fields"]["exit_code"] == 1
