"""A Segment-compatible collector as a plain ASGI app (run by `pql serve` under uvicorn).

    POST /v1/batch /v1/track /v1/identify /v1/group /v1/page /v1/screen /v1/alias
    GET  /health (open, says only ok or degraded)
    GET  /metrics (Authorization: Bearer METRICS_KEY)
    with a model (`pql serve --model`), for the product, authenticated with a product key:
    GET  /v1/prompts/{user_id}   POST /v1/feedback

A request is validated, then logged as it came (its body, source and receive time, one line)
and acknowledged (HTTP 200, JSON body) only after the line is fsync'ed to the durable log. A
flusher in a process of its own normalises the messages and moves them into the database. 400 means "do not retry as
is" and names the message and field; 401 a wrong or missing write key; 503 with Retry-After
when the log's queue is too deep.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..backends import connect
from ..collect.background import FlusherProcess, FlusherThread
from ..collect.log import ROTATE_SECONDS, DurableLog
from ..collect.segment_api import ApiError, check_body
from ..errors import PqlkitError
from .feedback import feedback_row
from .prometheus import exposition, tracking, wants_prometheus
from .wire import MAX_BODY, ClientGone, gunzip, read_body, send_bytes, send_json


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Collector:
    """The ASGI app. ``write_keys`` maps a source name to its write key (kept only hashed)."""

    def __init__(
        self,
        url: str,
        log_dir: str | Path,
        write_keys: dict[str, str],
        *,
        table: str = "events",
        max_queue: int = 250_000,
        flush_interval: float = 0.25,
        resolve_interval: float = 5.0,
        max_backlog_segments: int = 32,
        storing_grace: float = 5.0,
        live: Any = None,
        product_keys: list[str] | None = None,
        metrics_keys: list[str] | None = None,
        log_seconds: float | None = None,
        syncs: Any = None,
        checker: Any = None,
    ):
        if not write_keys:
            raise ValueError("the collector needs at least one write key (--write-key SOURCE=KEY)")
        self.url = url
        self.log_dir = Path(log_dir)
        self.keys = {hash_key(k): source for source, k in write_keys.items()}
        self._known: dict[str, str] = {}  # Authorization headers already checked -> source
        self.table = table
        self.max_queue = max_queue
        self.flush_interval = flush_interval
        self.resolve_interval = resolve_interval
        self.max_backlog_segments = max_backlog_segments  # x 64 MB of log not yet in the database
        # how long storing may fail before new events are refused (503): past it, nothing more
        # is acknowledged until the database takes events again
        self.storing_grace = storing_grace
        self.accepted = 0
        self.rejected = 0
        self.abandoned = 0  # requests whose client left before the body was complete
        self.log: DurableLog | None = None
        self.flusher: FlusherProcess | None = None
        self.web_beside = False
        """The web app is served from this process too (`pql serve --ui`)."""
        # pqlkit.usecases.collecting.LiveScoring: the flusher's subscriber and the product's
        # prompt and feedback API (`pql serve --model`)
        self.live = live
        # pqlkit.usecases.scheduled.ScheduledSyncs: the model's CRM syncs, in a thread here
        self.syncs = syncs
        self.product_keys = {hash_key(k) for k in (product_keys or [])}
        self.metrics_keys = {hash_key(k) for k in (metrics_keys or [])}
        # how long a log segment stays open: raw requests live in the log at most this long
        # after they are stored (PQL_LOG_SECONDS; tests shorten it)
        self.log_seconds = log_seconds if log_seconds is not None else _log_seconds()
        self._known_products: set[str] = set()
        self.handoff: Any = live.handoff if live is not None else None
        self.reader: Any = None
        self.desk: Any = None
        self.prompts_answered = 0
        self.prompts_shown = 0
        self.feedback_accepted = 0
        # counts what breaks the model's tracking plan, refusing nothing (pqlkit.tracking.check)
        self.checker: Any = checker
        if live is not None and not self.product_keys:
            raise ValueError(
                "`pql serve --model` answers the product's prompt and feedback API: give a "
                "product key (--product-key KEY or PQL_PRODUCT_KEY)"
            )

    @classmethod
    def from_setup(cls, setup: Any) -> Collector:
        """The collector a :class:`pqlkit.usecases.collecting.CollectorSetup` describes."""
        return cls(
            setup.url,
            setup.log_dir,
            setup.keys,
            table=setup.table,
            resolve_interval=setup.resolve_interval,
            live=setup.live,
            product_keys=setup.product_keys,
            metrics_keys=setup.metrics_keys,
            syncs=setup.syncs,
            checker=setup.tracking,
        )

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        probe = connect(self.url)  # fails here, clearly, if the database cannot be opened
        hold = probe.path is None  # a DuckDB file is opened per flush, so other commands can use it
        if probe.url == ":memory:":
            raise ValueError("the collector needs a database file or server, not :memory:")
        probe.close()
        # beside the web app on a DuckDB file, a thread of this process (see FlusherThread)
        kind = FlusherThread if self.web_beside and not hold else FlusherProcess
        self.flusher = kind(
            self.url,
            self.log_dir,
            self.table,
            interval=self.flush_interval,
            resolve_interval=self.resolve_interval,
            hold=hold,
            subscriber=self.live.subscriber() if self.live is not None else None,
        )
        if self.live is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.reader = self.live.state_reader()
            self.desk = self.live.prompt_desk(self.reader)
        self.log = DurableLog(
            self.log_dir,
            on_durable=self.flusher.state.publish,
            rotate_seconds=self.log_seconds,
            stored=self.flusher.state.stored_position,
        )
        self.flusher.start()  # first stores what a previous run acknowledged but did not store
        self.flusher.watch(give_up=_stop_serving)  # a flusher that dies is started again
        if self.syncs is not None:
            self.syncs.start()
        # Everything imported so far lives as long as the server: keep it out of the garbage
        # collector's full passes, which otherwise walk it all while requests wait (p99).
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        if self.syncs is not None:
            self.syncs.stop()
        if self.log is not None:
            self.log.close()  # everything acknowledged is durable
        if self.flusher is not None:
            self.flusher.stop()  # and stored
        if self.desk is not None:
            self.desk.close()
        elif self.reader is not None:
            self.reader.close()

    # --- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/"), scope["method"]
        if method == "GET" and path == "/health":
            # open to anyone (load balancers): the error's text, which may quote a database
            # URL or a stored value, is in /metrics, behind its key
            error = self.flusher_error()
            quarantined = self.flusher.state.quarantined.value if self.flusher else 0
            await send_json(
                send,
                200 if error is None else 503,
                {
                    "status": "ok" if error is None else "degraded",
                    **({"error": "the flusher is failing; see /metrics"} if error else {}),
                    "refusing_events": self.refusing() is not None,
                    "flusher_restarts": self.flusher.restarts if self.flusher else 0,
                    # stored apart with the reason: see pql_quarantine
                    "quarantined": quarantined,
                    **({"crm_sync": self.syncs.health()} if self.syncs is not None else {}),
                    **(
                        {"tracking": tracking(self.checker, self.flusher, brief=True)}
                        if self.checker
                        else {}
                    ),
                },
            )
            return
        if method == "GET" and path == "/metrics":
            try:
                self._metrics_key(scope)
            except ApiError as exc:
                await send_json(send, exc.status, exc.body(), [(b"www-authenticate", b"Bearer")])
                return
            accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), "")
            if wants_prometheus(accept):  # a Prometheus scraper: its text format
                text, content_type = exposition(self.metrics(), accept)
                await send_bytes(send, 200, text, content_type)
                return
            await send_json(send, 200, self.metrics())
            return
        if not path.startswith("/v1/"):
            await send_json(send, 404, {"code": "not_found", "message": f"no endpoint {path}"})
            return
        if path.startswith("/v1/prompts/") or path == "/v1/feedback":
            try:
                status, body = await self._product(method, path, scope, receive)
            except ClientGone:
                self.abandoned += 1
                return
            except ApiError as exc:
                status, body = exc.status, exc.body()
            await send_json(send, status, body)
            return
        if method != "POST":
            await send_json(send, 405, {"code": "method_not_allowed", "message": "use POST"})
            return
        try:
            status, body = await self._ingest(path[4:], scope, receive)
        except ClientGone:
            self.abandoned += 1
            return
        except ApiError as exc:
            self.rejected += 1
            status, body = exc.status, exc.body()
        headers = [(b"retry-after", b"1")] if status in (429, 503) else []
        await send_json(send, status, body, headers)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _ingest(self, endpoint: str, scope, receive) -> tuple[int, dict[str, Any]]:
        authorization = encoding = None
        for key, value in scope["headers"]:
            name = key.lower()
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-encoding":
                encoding = value.decode("latin-1").lower()
        raw = await read_body(receive, MAX_BODY)
        if encoding in ("gzip", "x-gzip"):
            raw = gunzip(raw, MAX_BODY)
        elif encoding not in (None, "", "identity"):
            raise ApiError(
                415,
                "unsupported_encoding",
                f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
            )
        try:
            body = orjson.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        source = self._source(authorization, body)
        assert self.log is not None  # started by the lifespan
        if self.log.pending_messages > self.max_queue:
            return 503, {"code": "overloaded", "message": "the collector is busy; retry shortly"}
        refusing = self.refusing()
        if refusing is not None:
            return 503, {"code": "storing_failed", "message": refusing}
        if (
            self.flusher is not None
            and self.flusher.state.backlog_segments() > self.max_backlog_segments
        ):
            return 503, {
                "code": "overloaded",
                "message": "the database is behind the log; retry shortly (nothing was stored)",
            }
        now = datetime.now(UTC).replace(tzinfo=None)
        received = now.isoformat() + "Z"
        n = check_body(endpoint, body, len(raw), received_at=now)
        # The body goes to the log as it came (JSON whitespace made spaces, so it is one line):
        # nothing is serialised again on the request path.
        line = b"".join(
            (
                b'{"s":',
                orjson.dumps(source),
                b',"r":"',
                received.encode(),
                b'","e":',
                orjson.dumps(endpoint),
                b',"b":',
                raw.replace(b"\r", b" ").replace(b"\n", b" "),
                b"}\n",
            )
        )
        await asyncio.wrap_future(self.log.append([line], messages=n))
        self.accepted += n
        if self.checker is not None:  # acknowledged: now counted against the tracking plan
            self.checker.check(endpoint, body)
        return 200, {"success": True}

    # --- the product's API ----------------------------------------------------------------------
    async def _product(self, method: str, path: str, scope, receive) -> tuple[int, dict[str, Any]]:
        if self.handoff is None:
            raise ApiError(
                404,
                "not_found",
                f"{path} needs live scoring: start the collector with --model pql.yml",
            )
        self._product_key(scope)
        now = datetime.now(UTC).replace(tzinfo=None)
        if path.startswith("/v1/prompts/"):
            if method != "GET":
                raise ApiError(405, "method_not_allowed", "use GET")
            if self.desk is None:
                raise ApiError(404, "not_found", "the model declares no prompts (handoff.prompts)")
            from urllib.parse import unquote

            user_id = unquote(path[len("/v1/prompts/") :])
            if not user_id or len(user_id) > 1000:
                raise ApiError(400, "invalid_user_id", "name a user id: GET /v1/prompts/{user_id}")
            answer = self.desk.answer(user_id, now)
            self.prompts_answered += 1
            self.prompts_shown += int(answer.show)
            return 200, answer.to_dict(user_id)
        if method != "POST":
            raise ApiError(405, "method_not_allowed", "use POST")
        raw = await read_body(receive, 64 * 1024)
        try:
            body = orjson.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        row = self._feedback_row(body, now)
        line = (
            orjson.dumps({"s": "feedback", "r": now.isoformat() + "Z", "e": "feedback", "b": row})
            + b"\n"
        )
        assert self.log is not None
        await asyncio.wrap_future(self.log.append([line], messages=1))
        self.feedback_accepted += 1
        return 200, {"success": True, "user_id": row["user_id"], "quiet_until": row["quiet_until"]}

    def _feedback_row(self, body: Any, now: datetime) -> dict[str, Any]:
        assert self.reader is not None
        return feedback_row(body, now, self.live.actions, self.live.cooldown, self.reader)

    def flusher_error(self) -> str | None:
        """What keeps the flusher from storing, None while it stores (a flusher the watchdog
        is starting again counts as stopped until it is back)."""
        error = self.flusher.state.error_text() if self.flusher else None
        if self.flusher is not None and not self.flusher.alive:
            error = f"the flusher process has stopped ({error or 'no reason given'})"
        return None if error is None else str(error)

    def _metrics_key(self, scope) -> None:
        """/metrics counts traffic and may quote the flusher's error: a key of its own, not a
        write key (those are public in web pages that send events)."""
        if not self.metrics_keys:
            raise ApiError(
                401,
                "unauthorized",
                "/metrics needs a key: start the collector with --metrics-key KEY (or "
                "PQL_METRICS_KEY) and send 'Authorization: Bearer KEY'",
            )
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"authorization"),
            "",
        )
        key = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        if not key or hash_key(key) not in self.metrics_keys:
            raise ApiError(
                401, "unauthorized", "a valid metrics key is needed (Authorization: Bearer KEY)"
            )

    def _product_key(self, scope) -> None:
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"authorization"),
            None,
        )
        if authorization is not None and authorization in self._known_products:
            return
        key = None
        if authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not key or hash_key(key) not in self.product_keys:
            raise ApiError(
                401, "unauthorized", "a valid product key is needed (Authorization: Bearer KEY)"
            )
        if authorization is not None and len(self._known_products) < 1024:
            self._known_products.add(authorization)

    def _source(self, authorization: str | None, body: Any) -> str:
        if authorization is not None and authorization in self._known:
            return self._known[authorization]
        key = None
        if authorization and authorization.lower().startswith("basic "):
            try:
                key = base64.b64decode(authorization[6:].strip()).decode().split(":", 1)[0]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        from_header = key is not None and bool(key) and self.keys.get(hash_key(key)) is not None
        if not from_header and isinstance(body, dict) and body.get("writeKey"):
            key = body.get("writeKey")
        source = self.keys.get(hash_key(key)) if isinstance(key, str) and key else None
        if source is None:
            raise ApiError(
                401,
                "unauthorized",
                "a valid write key is needed (HTTP Basic 'writeKey:' or writeKey in the body)",
            )
        if from_header and authorization is not None and len(self._known) < 1024:
            self._known[authorization] = source  # a good header, seen again on every request
        return source

    def refusing(self) -> str | None:
        """Why new events are refused (storing has failed for longer than the grace, or the
        flusher stopped), or None while they are taken."""
        if self.flusher is None:
            return None
        state = self.flusher.state
        # no error text: a write key is public (web pages send events); /metrics has it
        if not self.flusher.alive:
            why = "the flusher is being started again"
        elif state.failing_for() > self.storing_grace:
            why = f"storing has failed for {state.failing_for():.0f} s"
        else:
            return None
        return f"{why}; retry shortly (nothing was stored)"

    def metrics(self) -> dict[str, Any]:
        state = self.flusher.state if self.flusher else None
        position = state.position() if state else (0, 0)
        error = self.flusher_error()
        return {
            **({"flusher_error": error} if error else {}),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "deduplicated": state.duplicates.value if state else 0,
            "stored": state.stored.value if state else 0,
            "suppressed": state.suppressed.value if state else 0,
            "quarantined": state.quarantined.value if state else 0,
            "log_lines": {  # how the flusher read them (see pqlkit.collect.fastpath)
                "fast_path": state.fast_lines.value if state else 0,
                "reference_path": state.reference_lines.value if state else 0,
            },
            "abandoned": self.abandoned,
            "queue_depth": self.log.pending_messages if self.log else 0,
            "backlog_segments": state.backlog_segments() if state else 0,
            "storing_failing_seconds": round(state.failing_for(), 1) if state else 0.0,
            "flusher_restarts": self.flusher.restarts if self.flusher else 0,
            **(
                {"flusher_last_death": self.flusher.last_death}
                if self.flusher and self.flusher.last_death
                else {}
            ),
            "refusing": self.refusing(),
            "log_position": {"segment": position[0], "offset": position[1]},
            **({"crm_sync": self.syncs.status()} if self.syncs is not None else {}),
            **(
                {
                    "live": state.live_stats() if state else None,
                    "prompts": {"answered": self.prompts_answered, "shown": self.prompts_shown},
                    "feedback": self.feedback_accepted,
                }
                if self.handoff is not None
                else {}
            ),
            **({"tracking": tracking(self.checker, self.flusher)} if self.checker else {}),
        }


def _log_seconds() -> float:
    """PQL_LOG_SECONDS, a positive number of seconds (60 when unset)."""
    text = os.environ.get("PQL_LOG_SECONDS", "").strip()
    try:
        seconds = float(text) if text else ROTATE_SECONDS
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise PqlkitError(
            f"PQL_LOG_SECONDS={text!r}: give how many seconds a log segment stays open, a "
            "positive number (e.g. 60)"
        )
    return seconds


def _stop_serving() -> None:
    """The flusher cannot be kept running: stop the server (it drains what it can); `pql serve`
    then exits non-zero (see Collector.failed)."""
    import signal

    os.kill(os.getpid(), signal.SIGTERM)
