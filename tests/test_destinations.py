"""The destination conformance suite: every kind in the registry the shells pass to the hand-off
(pqlkit.crm.destinations.KINDS), parametrized from it, so a new kind is checked without editing
this file. Each kind that sends one delivery at a time is sent to a real local HTTP receiver and
must authenticate (a signature, or a secret URL that never leaks), classify answers as Standard
Webhooks says, keep hostile user text inert, keep its receiver's pace, and post bodies that match
its schema. Kinds that send in batches (the CRMs) are declared in the model and refuse clearly
without the scored state; their sync is tested against HubSpot and Salesforce fakes in
tests/test_crm.py."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as Verifier

from pqlkit.crm.destinations import KINDS
from pqlkit.destinations import KINDS as HTTP_KINDS
from pqlkit.destinations import (
    Delivery,
    Gone,
    Ok,
    Permanent,
    Retry,
    RetryAfter,
    Session,
    build,
)
from pqlkit.destinations.teams import CLIP
from pqlkit.errors import PqlkitError
from pqlkit.handoff.deliver import secrets_for
from pqlkit.model.handoff import Handoff
from pqlkit.model.schema import json_schema_text

from .conftest import free_port

ONE_AT_A_TIME = sorted(k for k, f in KINDS.items() if not getattr(f, "batch", False))
BATCH = sorted(k for k, f in KINDS.items() if getattr(f, "batch", False))

HOSTILE = (
    '<!channel> <@U1> <script>alert("x")</script> **bold** _it_ [click](http://evil.example) '
    "<http://evil.example|click> & 'single' \"double\" <at>Ana</at>"
)
#: What a receiver would turn into a mention, a link or HTML if user text reached its markup.
LIVE_IN_ANY_MARKUP = ("<!channel>", "<@U1>", "<script", "<http://evil", "<at>")
LIVE_IN_MARKDOWN = ("[click](", "**bold**", "_it_")


def transition(text: str = HOSTILE, reasons: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "pql.became_pql",
        "id": "tr_1",
        "as_of": "2026-12-01T00:00:00Z",
        "model_version": "v1",
        "user": {
            "id": text,
            "account_id": text,
            "score": 82,
            "tier": text,
            "segment": text,
            "motion": text,
            "icp_profile": None,
            "is_pql": True,
            "top_reasons": reasons if reasons is not None else [text, "Invited 9 teammates (+20)"],
            "email": text,
            "role": text,
            "next_step": {
                "id": "play",
                "action": text,
                "talking_points": [text],
                "links": [{"label": text, "url": "https://x.example/a|b>c<d&e"}],
            },
        },
        "change": {"from": False, "to": True},
    }


def delivery(n: int = 1, data: dict[str, Any] | None = None) -> Delivery:
    return Delivery(f"tr_{n}", "x", json.dumps(data or transition(), sort_keys=True))


class Receiver:
    """A local HTTP endpoint that records every request and answers from a script: (status,
    headers, body) or "drop" (the connection closed without an answer)."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.seen: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.seen.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "raw": raw,
                        "at": time.monotonic(),
                    }
                )
                step = receiver.script.pop(0) if receiver.script else (200, {}, "ok")
                if step == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers, body = step
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/hooks/secret-path-123"

    def body(self, i: int = -1) -> Any:
        return json.loads(self.seen[i]["raw"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def client():
    with httpx.Client() as c:
        yield c


def make(kind: str, url: str, client: Any, sleep=lambda s: None) -> Any:
    """The kind's example declaration sending to ``url``, built from the full registry."""
    decl, env = KINDS[kind].example(url)
    handoff = Handoff.model_validate({"destinations": [decl]})
    spec = handoff.destinations[0]
    secrets = secrets_for(handoff, env, KINDS)[spec.id]
    return build(KINDS, spec, secrets, Session(client, lambda: datetime.now(UTC), sleep))


def env_of(kind: str, url: str) -> dict[str, str]:
    return KINDS[kind].example(url)[1]


# --- every kind ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_is_declared_in_the_model_under_the_name_it_is_registered_by(kind):
    assert KINDS[kind].kind == kind
    assert f'"const": "{kind}"' in json_schema_text()  # the model file's schema accepts it


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_is_documented(kind):
    for doc in ("docs/model.md", "README.md"):
        text = (Path(__file__).resolve().parents[1] / doc).read_text()
        assert f"| `{kind}`" in text or f"`{kind}` |" in text or f", `{kind}`" in text, (
            f"{doc} has no row for the destination kind {kind}"
        )


def test_the_http_registry_is_the_full_one_without_the_kinds_that_need_a_database():
    assert set(KINDS) - set(HTTP_KINDS) == set(BATCH)
    assert {"webhook", "slack", "teams"} <= set(ONE_AT_A_TIME)


# --- kinds sent one delivery at a time, over HTTP -----------------------------------------------


@pytest.mark.parametrize("kind", ONE_AT_A_TIME)
def test_the_receiver_can_tell_who_sent_it(kind, receiver, client):
    dest = make(kind, receiver.url, client)
    assert dest.send(delivery()) == Ok(200)
    seen = receiver.seen[0]
    secret = env_of(kind, receiver.url)
    if dest.auth == "signature":
        key = next(iter(secret.values()))
        Verifier(key).verify(seen["raw"], seen["headers"])  # raises when the signature is wrong
        seen["headers"]["webhook-signature"] = "v1,AAAA"
        with pytest.raises(Exception, match="signature"):
            Verifier(key).verify(seen["raw"], seen["headers"])
    else:
        assert dest.auth == "secret-url"
        assert seen["path"] == "/hooks/secret-path-123"  # the URL from the environment
        sent = seen["raw"].decode() + json.dumps(seen["headers"])
        assert "secret-path-123" not in sent  # the secret URL is not repeated to anyone


@pytest.mark.parametrize("kind", ONE_AT_A_TIME)
def test_answers_are_classified_as_standard_webhooks_says(kind, receiver, client):
    receiver.script = [
        (200, {}, "ok"),
        (202, {}, ""),
        (410, {}, "gone"),
        (429, {"Retry-After": "7"}, "slow down"),
        (503, {"Retry-After": "9"}, "busy"),
        (503, {}, "busy"),
        (429, {}, "slow down"),
        (500, {}, "boom"),
        (408, {}, "timeout"),
        (400, {}, "bad"),
        (404, {}, "no such hook"),
        "drop",
    ]
    # each answer to a destination of its own: a Retry-After pauses the one that got it
    got = [make(kind, receiver.url, client).send(delivery(i)) for i in range(12)]
    assert [type(o) for o in got] == [
        Ok, Ok, Gone, RetryAfter, RetryAfter, Retry, Retry, Retry, Retry, Permanent, Permanent,
        Retry,
    ]  # fmt: skip
    assert (got[3].seconds, got[4].seconds) == (7.0, 9.0)
    assert [o.status for o in got[:11]] == [200, 202, 410, 429, 503, 503, 429, 500, 408, 400, 404]
    assert got[9].error == "HTTP 400: bad" and got[11].status is None and got[11].error
    port = free_port()  # nobody listens: a network error, tried again later
    closed = make(kind, f"http://127.0.0.1:{port}/hooks/x", client)
    refused = closed.send(delivery())
    assert isinstance(refused, Retry) and "ConnectError" in refused.error


@pytest.mark.parametrize("kind", ONE_AT_A_TIME)
def test_a_retry_after_pauses_the_whole_destination(kind, receiver, client):
    receiver.script = [(429, {"Retry-After": "60"}, "slow down")]
    dest = make(kind, receiver.url, client)
    first, *rest = (dest.send(delivery(i)) for i in range(5))
    assert isinstance(first, RetryAfter) and first.seconds == 60
    assert all(isinstance(o, RetryAfter) and 50 < o.seconds <= 60 for o in rest)
    assert len(receiver.seen) == 1  # the other four were not sent
    assert all("asked to wait" in o.error for o in rest)


@pytest.mark.parametrize("kind", ONE_AT_A_TIME)
def test_hostile_user_text_stays_inert(kind, receiver, client):
    dest = make(kind, receiver.url, client)
    assert dest.send(delivery()) == Ok(200)
    body = receiver.body()  # quotes and backslashes did not break the JSON
    markup = dest.markup(body)
    if dest.syntax is None:
        assert body == transition() and markup == []  # data, exactly as recorded
        return
    assert markup, f"{kind}: markup() finds no rendered text in its own message"
    live = LIVE_IN_ANY_MARKUP + (LIVE_IN_MARKDOWN if dest.syntax == "markdown" else ())
    for text in markup:
        for token in live:
            assert token not in text, f"{kind}: {token!r} reaches rendered markup: {text!r}"
    assert "Invited 9 teammates (+20)" in json.dumps(body)  # the rep still reads the reasons


@pytest.mark.parametrize("kind", ONE_AT_A_TIME)
def test_messages_keep_the_receivers_pace(kind, receiver, client):
    waits: list[float] = []
    dest = make(kind, receiver.url, client, sleep=waits.append)
    for i in range(4):
        assert dest.send(delivery(i)) == Ok(200)
    if dest.interval == 0:
        assert waits == []
    else:
        assert len(waits) == 3 and all(0 < w <= dest.interval for w in waits)


@pytest.mark.parametrize("kind", ONE_AT_A_TIME)
def test_posted_bodies_match_the_kinds_schema(kind, receiver, client):
    dest = make(kind, receiver.url, client)
    account = {
        "type": "pql.became_pqa",
        "id": "tr_2",
        "as_of": "2026-12-01T00:00:00Z",
        "model_version": "v1",
        "account": {"id": "acme", "name": "Acme", "domain": "acme.com", "score": 70,
                    "tier": "A", "segment": "team", "motion": "sales", "pql_users": 3,
                    "champion": {"id": "u1", "email": HOSTILE, "role": HOSTILE},
                    "next_step": {"id": "p", "action": HOSTILE, "talking_points": [], "links": []}},
        "change": {"from": False, "to": True},
    }  # fmt: skip
    for data in (transition(), transition("plain", reasons=[]), account):
        assert dest.send(delivery(data=data)) == Ok(200)
        assert dest.schema, f"{kind} declares no schema for what it posts"
        problems = validate(receiver.body(), dest.schema)
        assert problems == [], f"{kind}: {problems}"
        assert receiver.seen[-1]["headers"]["content-type"] == "application/json"


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """The subset of JSON Schema the destinations' schemas use."""
    out: list[str] = []
    types = {"object": dict, "array": list, "string": str, "number": (int, float)}
    if "type" in schema and not isinstance(value, types[schema["type"]]):
        return [f"{where}: not {schema['type']}: {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not one of {schema['enum']}")
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        out.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            out.append(f"{where}: {len(value)} items")
        for i, item in enumerate(value):
            out += validate(item, schema.get("items", {}), f"{where}[{i}]")
    if isinstance(value, dict):
        out += [f"{where}: {k} missing" for k in schema.get("required", []) if k not in value]
        for k, sub in schema.get("properties", {}).items():
            if k in value and value[k] is not None:
                out += validate(value[k], sub, f"{where}.{k}")
    return out


def test_the_schema_check_itself_finds_a_wrong_body():
    schema = HTTP_KINDS["teams"].schema
    assert validate({"type": "message"}, schema) == [
        "$: summary missing",
        "$: attachments missing",
    ]


# --- unknown kinds are errors -------------------------------------------------------------------


def test_a_kind_the_registry_does_not_hold_is_an_error_never_a_default(receiver, client):
    handoff = Handoff.model_validate(
        {
            "destinations": [
                {"id": "team", "kind": "teams", "url_env": "TEAMS_URL"},
                {"id": "hubspot", "kind": "hubspot", "token_env": "HS_TOKEN"},
            ]
        }
    )
    env = {"TEAMS_URL": receiver.url, "HS_TOKEN": "pat-x"}
    only_webhooks = {"webhook": HTTP_KINDS["webhook"]}
    with pytest.raises(PqlkitError, match=r"destinations\[team\]: no sender for kind 'teams'"):
        secrets_for(handoff, env, only_webhooks)
    with pytest.raises(PqlkitError, match=r"destinations\[hubspot\]: no sender for kind 'hub"):
        secrets_for(handoff, env, HTTP_KINDS)  # the CRM kinds come with pqlkit.crm
    assert set(secrets_for(handoff, env, KINDS)) == {"team", "hubspot"}
    with pytest.raises(PqlkitError, match="no sender for kind 'teams'"):
        build(only_webhooks, handoff.destinations[0], [receiver.url], Session(client))
    assert receiver.seen == []  # nothing was posted to it in anyone's format


def test_a_bad_secret_is_located(receiver):
    for kind, bad, message in (
        ("webhook", "not base64 !!", "not a whsec_ secret"),
        ("teams", "teams.example.com/hook", "not an http"),
    ):
        decl, env = KINDS[kind].example(receiver.url)
        handoff = Handoff.model_validate({"destinations": [decl]})
        with pytest.raises(PqlkitError, match=rf"destinations\[{decl['id']}\]: .*{message}"):
            secrets_for(handoff, dict.fromkeys(env, bad), KINDS)


# --- Microsoft Teams' own rules -----------------------------------------------------------------


def test_teams_reads_a_throttled_200_as_a_429_and_keeps_cards_under_28_kb(receiver, client):
    dest = make("teams", receiver.url, client)
    receiver.script = [
        (200, {}, "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
         "HTTP error 429 with ContextId tcid=0"),
        (200, {}, "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
         "HTTP error 500 with ContextId tcid=0"),
        (200, {}, "1"),
    ]  # fmt: skip
    throttled, failed, ok = (
        make("teams", receiver.url, client).send(delivery(i)) for i in range(3)
    )
    assert isinstance(throttled, RetryAfter) and throttled.seconds == 30 and throttled.status == 429
    assert isinstance(failed, Retry) and "HTTP error 500" in failed.error
    assert ok == Ok(200)
    huge = transition("x" * 100_000, reasons=["y" * 100_000] * 50)
    assert dest.send(delivery(data=huge)) == Ok(200)
    raw = receiver.seen[-1]["raw"]
    assert len(raw) < 28_000, len(raw)
    card = receiver.body()["attachments"][0]["content"]
    assert "actions" not in card  # a 100,000-character link is left out, not cut wrong
    runs = [r["text"] for b in card["body"] for r in b.get("inlines", [])]
    assert sum(1 for r in runs if r.startswith("• ")) == 10
    assert all(len(r["text"]) <= CLIP for b in card["body"] for r in b.get("inlines", []))


def test_teams_cards_carry_the_lead_link_and_a_plain_fallback(receiver, client):
    dest = make("teams", receiver.url, client)
    assert dest.send(delivery(data=transition("u/1 & co"))) == Ok(200)
    message = receiver.body()
    card = message["attachments"][0]["content"]
    assert card["actions"][0]["url"] == "https://app.example.com/leads/u%2F1%20%26%20co"
    assert message["summary"] == card["fallbackText"]
    # the person (e-mail, role), then the company
    assert message["summary"].startswith("u/1 & co (u/1 & co) (u/1 & co) became pql: score 82")
    assert "mentions" not in json.dumps(message) and "entities" not in json.dumps(message)


# --- kinds that send in batches (the CRMs) ------------------------------------------------------


@pytest.mark.parametrize("kind", BATCH)
def test_batch_kinds_need_the_scored_state_and_say_so(kind, receiver, client):
    dest = make(kind, receiver.url, client)
    assert dest.batch and dest.kind == kind
    with pytest.raises(PqlkitError, match=r"destinations\[crm\]: .*pass engine= to deliver_due"):
        dest.send(delivery())
    assert receiver.seen == []


# --- the seam's place in the house --------------------------------------------------------------

SRC = Path(__file__).resolve().parents[1] / "src" / "pqlkit"


def _imports(package: str) -> dict[str, set[str]]:
    """Every pqlkit module each file of ``package`` imports, imports inside functions included."""
    import ast

    out: dict[str, set[str]] = {}
    for path in (SRC / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against the file's package
                    base = path.relative_to(SRC.parent).with_suffix("").parts[: -node.level]
                    names.add(".".join((*base, node.module or "")).rstrip("."))
                elif node.module:
                    names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[str(path.relative_to(SRC))] = {n for n in names if n.startswith("pqlkit")}
    return out


def test_destinations_are_a_bottom_layer_and_the_hand_off_names_no_crm():
    allowed = ("pqlkit.destinations", "pqlkit.errors", "pqlkit.model")
    for path, names in _imports("destinations").items():
        wrong = sorted(n for n in names if not n.startswith(allowed))
        assert not wrong, f"{path} imports {wrong}: destinations/ may import errors and model"
    for path, names in _imports("handoff").items():
        assert not [n for n in names if n.startswith("pqlkit.crm")], f"{path} imports crm/"
        text = (SRC / path).read_text().lower()
        assert "hubspot" not in text and "salesforce" not in text, f"{path} names a CRM"
