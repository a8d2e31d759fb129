"""The web app for reps and RevOps (`pql ui`): an inbox of PQLs and PQAs, a lead's story, an
account, the model's health and the hand-off's deliveries.

Server-rendered pages (Jinja2, autoescaped), no JavaScript at all (the Content-Security-Policy
forbids scripts), every asset served from here. Signed-in only: a session is kept in the
database and named by an opaque cookie (:mod:`.signin`, :mod:`.sessions`), every form carries a
CSRF token bound to the session, and a rep's session cannot open the admin pages. What is
readable without signing in: /login, /static/app.css and /health (the text "ok", nothing more).
Ids, filters and form fields with control characters are refused with 400 before any query.

Each request opens its own connection (a DuckDB file is shared with `pql serve` and `pql score`
by turns) and calls the same use cases as the CLI (:mod:`pqlkit.usecases.inbox`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..access import accounts, sessions
from ..backends import connect
from ..errors import PqlkitError
from ..model.load import LoadedModel, load_model
from ..report.build import CSS as REPORT_CSS
from ..templates import environment
from ..usecases import handoff, leads, tracking
from ..usecases import inbox as desk
from ..usecases.session import Session
from . import charts, guard, health, proposal
from .http import (
    DELIVERY_STATUSES,
    FORBIDDEN,
    STATIC,
    SecurityHeaders,
    account_url,
    back,
    lead_url,
    num,
    page_number,
    refused_text,
    safe_next,
    same,
    unavailable,
    wbr,
    when,
)
from .signin import Door
from .warm import Warm

__all__ = ["Ui", "create_app", "safe_next"]
MAX_PAGE = 1_000_000
"""No inbox has 50 million PQLs; a page past this is not there (and its offset would overflow)."""


class Ui:
    def __init__(
        self,
        model_path: str | Path,
        url: str | None,
        *,
        proposal: str | Path | None = None,
        keep_open: float = 2.0,
    ):
        self.model_path = Path(model_path)
        self.url = url
        self.proposal = Path(proposal) if proposal else None
        self.templates: dict[str, str] = {}  # compiled SQL, shared by every request's engine
        self._loaded: tuple[float, LoadedModel] | None = None
        self._load_lock = threading.Lock()
        self.health = health.Health()
        self.env = environment()
        # the DuckDB file kept open between requests while the app is busy (see .warm)
        self.warm = Warm(lambda: connect(self.url), keep_open)
        self.loaded()  # a model that does not load stops `pql ui` before it serves

    # --- plumbing ------------------------------------------------------------------------------
    def loaded(self) -> LoadedModel:
        """The model, loaded again when its file changes."""
        mtime = self.model_path.stat().st_mtime
        with self._load_lock:
            if self._loaded is None or self._loaded[0] != mtime:
                self._loaded = (mtime, load_model(self.model_path))
            return self._loaded[1]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A request's session: its own connection (the DuckDB file kept warm between
        requests), the model as its file stands, the compiled SQL shared by every request."""
        backend = connect(self.url)
        try:
            self.warm.keep(backend)
            s = Session(backend, self.loaded(), templates=self.templates)
        except BaseException:  # a model that stopped loading: let the file go all the same
            backend.close()
            raise
        try:
            yield s
        finally:
            s.close()

    @contextmanager
    def engine(self) -> Iterator[Any]:
        """A session's engine (the model page's findings are computed in a thread of their own)."""
        with self.session() as s:
            yield s.engine

    def close(self) -> None:
        """Shutting down: the model page's findings stop (their connection interrupted) and
        the warm file is let go, each thread joined, before the interpreter finalizes."""
        health.stop(self.health)
        self.warm.close()

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        session = getattr(request.state, "session", None)
        html = self.env.get_template(name).render(
            request=request,
            me=context.pop("me", None),
            csrf=session.csrf if session else getattr(request.state, "csrf", ""),
            flash=getattr(request.state, "flash", None),
            tracking_alerts=getattr(request.state, "tracking_alerts", None),
            lead_url=lead_url,
            account_url=account_url,
            when=when,
            num=num,
            wbr=wbr,
            **context,
        )
        return Response(html, status, media_type="text/html; charset=utf-8")

    def page(self, role: str, fn: Callable[..., Response]) -> Callable[[Request], Any]:
        """A GET page for ``role``; ``fn(request, me, session)`` runs in a worker thread."""

        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(self._page, request, role, fn)

        return endpoint

    def _page(self, request: Request, role: str, fn: Callable[..., Response]) -> Response:
        try:
            return self._signed_page(request, role, fn)
        except PqlkitError as exc:  # the model or the database, before anyone is known
            return unavailable(exc)

    def _signed_page(self, request: Request, role: str, fn: Callable[..., Response]) -> Response:
        with self.session() as s:
            me = self.door.signed_in(request, s.backend)
            if me is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?{urlencode({'next': target})}", 303)
            if role == "admin" and not me.is_admin:
                return self.render(
                    request, "error.html", 403, me=me, message=FORBIDDEN, heading="Admins only"
                )
            refused = refused_text(
                [*request.path_params.items(), *request.query_params.multi_items()]
            )
            if refused:
                return self.render(request, "error.html", 400, me=me, message=refused)
            session = request.state.session
            if me.is_admin:  # events the model reads that stopped or fell (pql serve --model)
                request.state.tracking_alerts = tracking.alerts(s)
            if session.flash:
                sessions.flash(s.backend, session, None)
                request.state.flash = session.flash
            try:
                return fn(request, me, s)
            except PqlkitError as exc:
                return self.render(request, "error.html", 400, me=me, message=str(exc))

    def action(self, role: str, fn: Callable[..., Response]) -> Callable[[Request], Any]:
        """A POST form for ``role``, refused without a session or with a CSRF token other
        than the session's; ``fn(request, form, me, session)`` runs in a worker thread."""

        async def endpoint(request: Request) -> Response:
            form = await request.form()
            return await run_in_threadpool(self._action, request, form, role, fn)

        return endpoint

    def _action(self, request: Request, form: Any, role: str, fn: Callable[..., Response]):
        try:
            return self._signed_action(request, form, role, fn)
        except PqlkitError as exc:
            return unavailable(exc)

    def _signed_action(self, request: Request, form: Any, role: str, fn: Callable[..., Response]):
        with self.session() as s:
            me = self.door.signed_in(request, s.backend)
            if me is None or not same(form.get("csrf"), request.state.session.csrf):
                return PlainTextResponse(
                    "403 Forbidden: the form's CSRF token does not match your session; reload "
                    "the page and try again",
                    403,
                )
            if role == "admin" and not me.is_admin:
                return PlainTextResponse(f"403 Forbidden: {FORBIDDEN}", 403)
            refused = refused_text(form.multi_items())
            if refused:
                return PlainTextResponse(f"400 Bad Request: {refused}", 400)
            try:
                return fn(request, form, me, s)
            except PqlkitError as exc:
                self.flash(request, s, f"Not done: {exc}")
                return RedirectResponse(back(request, form), 303)

    def flash(self, request: Request, s: Session, text: str) -> None:
        """Show ``text`` on the session's next page."""
        sessions.flash(s.backend, request.state.session, text)

    # --- pages -------------------------------------------------------------------------------------
    def inbox(self, request: Request, me: accounts.User, s: Session) -> Response:
        q = request.query_params
        page = page_number(q.get("page"))
        if page > MAX_PAGE:
            return self.render(request, "error.html", 404, me=me, message=f"No page {page} here.")
        owner = q.get("owner") or None
        filters = desk.Filters(
            kind=q.get("kind") or "users",
            motion=q.get("motion") or None,
            segment=q.get("segment") or None,
            tier=q.get("tier") or None,
            profile=q.get("profile") or None,
            owner=me.name if owner == "me" else owner,
            q=q.get("q") or None,
            status=q.get("status") or "open",
            page=page,
        )
        result = desk.inbox(s, filters)
        if page > result.pages:
            return self.render(
                request,
                "error.html",
                404,
                me=me,
                message=f"No page {page} here: this view has {result.pages} "
                f"page{'s' if result.pages > 1 else ''}.",
            )
        args = {k: v for k, v in q.items() if v and k != "page"}
        return self.render(
            request,
            "inbox.html",
            me=me,
            page=result,
            args=args,
            page_url=lambda n: "/inbox?" + urlencode({**args, "page": n}),
            owner_choice=owner or "",
        )

    def lead(self, request: Request, me: accounts.User, s: Session) -> Response:
        user_id = request.path_params["user_id"]
        found = leads.lead(s, user_id, all_events=request.query_params.get("events") == "all")
        if found is None:
            return self.render(
                request, "error.html", 404, me=me, message=f"No scored user {user_id!r}."
            )
        chart = None
        if len(found.history) > 1:
            chart = Markup(
                charts.score_timeline(
                    [(h["as_of"], h["score"]) for h in found.history],
                    threshold=s.model.thresholds.pql_score,
                )
            )
        return self.render(
            request,
            "lead.html",
            me=me,
            lead=found,
            chart=chart,
            threshold=s.model.thresholds.pql_score,
            owners=desk.owner_changes(s, "user", user_id),
            take=request.query_params.get("take") == "1",
        )

    def account(self, request: Request, me: accounts.User, s: Session) -> Response:
        account_id = request.path_params["account_id"]
        page = page_number(request.query_params.get("page"))
        found = leads.account(s, account_id, page=page)
        if found is None:
            return self.render(
                request, "error.html", 404, me=me, message=f"No scored account {account_id!r}."
            )
        return self.render(
            request,
            "account.html",
            me=me,
            account=found,
            owners=desk.owner_changes(s, "account", account_id),
            page=page,
            pages=max(1, -(-found.users_total // desk.PAGE)),
            page_url=lambda n: f"{account_url(account_id)}?page={n}#users",
            take=request.query_params.get("take") == "1",
        )

    def _findings(self, s: Session, outcome: str, refresh: bool = False) -> tuple[str, ...]:
        """Start (or find) the model page's findings for the latest run; their key."""
        run = desk.latest_run(s)
        key = (s.loaded.version, run[0].isoformat() if run else "", outcome)
        health.start(self.health, key, refresh, self.engine, outcome=outcome, backend=s.backend)
        return key

    def model(self, request: Request, me: accounts.User, s: Session) -> Response:
        loaded = s.loaded
        run = desk.latest_run(s)
        outcome = request.query_params.get("outcome") or "opportunity"
        key = self._findings(s, outcome, request.query_params.get("refresh") == "1")
        h = self.health
        path = Path(loaded.path)
        target = self.proposal or path.with_name(f"{path.stem}.proposed.yml")
        changes = proposal.compare(path, target) if target.exists() else None
        body = h.current(key)
        return self.render(
            request,
            "model.html",
            me=me,
            loaded=loaded,
            run=run,
            yaml=path.read_text(encoding="utf-8"),
            model_file=path.name,
            proposal=target,
            changes=changes,
            health=h,
            findings=Markup(body) if body is not None else None,
            stale=(Markup(h.stale[0]), h.stale[1]) if body is None and h.stale else None,
            elapsed=int(time.monotonic() - h.started) if h.started else 0,
        )

    def deliveries(self, request: Request, me: accounts.User, s: Session) -> Response:
        q = request.query_params
        chosen = [s for s in q.getlist("status") if s in DELIVERY_STATUSES]
        statuses = chosen or ["pending", "failed", "dead", "disabled"]
        counts = handoff.delivery_counts(s)
        total = sum(counts.get(status, 0) for status in statuses)
        pages = max(1, -(-total // desk.PAGE))
        page = page_number(q.get("page"))
        if page > pages:
            return self.render(
                request, "error.html", 404, me=me, message=f"No page {page} here: {pages} in all."
            )
        rows = handoff.deliveries(
            s, statuses=statuses, limit=desk.PAGE, offset=(page - 1) * desk.PAGE
        )
        args = [("status", status) for status in chosen]
        return self.render(
            request,
            "deliveries.html",
            me=me,
            rows=rows,
            statuses=statuses,
            all_statuses=DELIVERY_STATUSES,
            counts=counts,
            total=total,
            page=page,
            pages=pages,
            page_url=lambda n: "/deliveries?" + urlencode([*args, ("page", n)]),
            confirm=q.get("confirm") == "retry",
            to_retry=counts.get("failed", 0) + counts.get("dead", 0),
        )

    # --- actions -----------------------------------------------------------------------------------
    def feedback(self, request: Request, form: Any, me: accounts.User, s: Session) -> Response:
        user_id = str(form.get("user_id", ""))
        action = str(form.get("action", ""))
        fb = desk.feedback(s, user_id, action, reason=str(form.get("reason", "")), by=me.name)
        self.flash(
            request,
            s,
            f"{user_id} marked {'done' if action == 'done' else 'disqualified'}; "
            f"no re-alert until {when(fb.quiet_until)} UTC.",
        )
        return RedirectResponse(back(request, form), 303)

    def assign(self, request: Request, form: Any, me: accounts.User, s: Session) -> Response:
        entity = str(form.get("entity", "user"))
        if entity not in ("user", "account"):
            raise PqlkitError(f"entity {entity!r}: use user or account")
        id_ = str(form.get("id", ""))
        owner = me.name if form.get("owner") == "me" else None
        take = form.get("take") == "yes"
        current = desk.owner_of(s.engine, entity, id_)
        page = lead_url(id_) if entity == "user" else account_url(id_)
        if current not in (None, me.name) and not take:
            # another rep's: their page asks first, saying whose it is
            return RedirectResponse(f"{page}?take=1#actions", 303)
        before = desk.assign(s, entity, id_, owner, by=me.name, take_over=take)
        if owner and before not in (None, me.name):
            text = f"{id_} is yours now, taken over from {before} (recorded)."
        else:
            text = f"{id_} is {'yours' if owner else 'unassigned'} now."
        self.flash(request, s, text)
        return RedirectResponse(back(request, form), 303)

    def retry(self, request: Request, form: Any, me: accounts.User, s: Session) -> Response:
        tid, dest = str(form.get("transition_id", "")), str(form.get("destination", ""))
        if tid:
            n = handoff.retry_one(s, tid, dest)
        elif form.get("confirmed") != "yes":  # every failed one at once: asked first
            return RedirectResponse("/deliveries?confirm=retry#retry-all", 303)
        else:
            statuses = [s for s in form.getlist("status") if s in ("failed", "dead", "disabled")]
            n = handoff.retry(s, statuses=statuses or ["failed", "dead"])
        self.flash(request, s, f"{n} deliver{'y' if n == 1 else 'ies'} due again now.")
        return RedirectResponse(back(request, form), 303)

    # --- the app -----------------------------------------------------------------------------------
    def app(
        self,
        secret: str,
        *,
        https_only: bool = False,
        max_age: int = sessions.MAX_AGE,
        throttle: guard.Throttle | None = None,
        trusted_proxies: Iterable[str] = (),
    ) -> Starlette:
        self.door = Door(
            self,
            secret,
            https_only=https_only,
            max_age=max_age,
            throttle=throttle,
            trusted_proxies=trusted_proxies,
        )
        routes = [
            Route("/", lambda r: RedirectResponse("/inbox", 303)),
            Route("/health", lambda r: PlainTextResponse("ok")),
            Route("/static/app.css", self.css),
            Route("/login", self.door.login_page, methods=["GET"]),
            Route("/login", self.door.login, methods=["POST"]),
            Route("/logout", self.action("rep", self.door.logout), methods=["POST"]),
            Route("/inbox", self.page("rep", self.inbox)),
            Route("/leads/{user_id:path}", self.page("rep", self.lead)),
            Route("/accounts/{account_id:path}", self.page("rep", self.account)),
            Route("/model", self.page("admin", self.model)),
            Route("/deliveries", self.page("admin", self.deliveries)),
            Route("/actions/feedback", self.action("rep", self.feedback), methods=["POST"]),
            Route("/actions/assign", self.action("rep", self.assign), methods=["POST"]),
            Route("/actions/retry", self.action("admin", self.retry), methods=["POST"]),
        ]
        app = Starlette(
            routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=self._life
        )
        app.state.ui = self  # `pql serve --ui` closes it from the collector's lifespan
        return app

    @asynccontextmanager
    async def _life(self, app: Starlette) -> AsyncIterator[None]:
        yield
        self.close()

    def css(self, request: Request) -> Response:
        # the app's own rules last: they win over the report's (its findings are shown inside a page)
        text = REPORT_CSS + (STATIC / "app.css").read_text(encoding="utf-8")
        return Response(text, media_type="text/css", headers={"cache-control": "max-age=3600"})


def create_app(
    model_path: str | Path,
    url: str | None,
    *,
    secret: str,
    proposal: str | Path | None = None,
    https_only: bool = False,
    keep_open: float = 2.0,
    trusted_proxies: Iterable[str] = (),
) -> Starlette:
    return Ui(model_path, url, proposal=proposal, keep_open=keep_open).app(
        secret, https_only=https_only, trusted_proxies=trusted_proxies
    )
