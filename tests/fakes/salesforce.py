"""A Salesforce REST fake: OAuth token endpoint (client credentials; JWT bearer checked with
the app's certificate key), sessions that expire (401 INVALID_SESSION_ID), the daily API
allowance in Sforce-Limit-Info and 403 REQUEST_LIMIT_EXCEEDED past it, describe, sObject
Collections upsert by external id (at most 200 records, a result per record: invalid e-mail,
missing required field, duplicate external id), and SOQL pages with nextRecordsUrl."""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
V = "v62.0"
STANDARD = {
    "Lead": ["Id", "Email", "LastName", "Company", "FirstName"],
    "Contact": ["Id", "Email", "LastName", "AccountId"],
    "Account": ["Id", "Name", "Website"],
}
REQUIRED = {"Lead": ["LastName", "Company"], "Contact": ["LastName"], "Account": ["Name"]}


def _errs(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse([{"message": message, "errorCode": code}], status_code=status)


class FakeSalesforce:
    def __init__(self, client_id: str = "cid", client_secret: str = "csecret", *, public_key: Any = None,
                 username: str | None = None, daily_limit: int = 15000, session_calls: int = 10**9,
                 page_size: int = 2000):  # fmt: skip
        self.client_id, self.client_secret = client_id, client_secret
        self.public_key, self.username = public_key, username
        self.daily_limit, self.used = daily_limit, 0
        self.session_calls = session_calls
        """A session expires after this many calls (then 401 until a new token)."""
        self.page_size = page_size
        self.sessions: dict[str, int] = {}
        self.tokens_issued = 0
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.custom: dict[str, list[str]] = {}
        """Custom fields per object (as an admin would have created them): set by tests."""
        self.external: dict[str, set[str]] = {}
        self.records: dict[str, dict[str, dict[str, Any]]] = {
            "Lead": {},
            "Contact": {},
            "Account": {},
        }
        self.opportunities: list[dict[str, Any]] = []
        self.upserts: list[tuple[str, list[str]]] = []
        self.duplicated: set[str] = set()
        """External ids two records share in the org (the field was not unique)."""
        self.fail_next: list[int] = []
        self.stall = 0.0
        """Seconds each upsert takes (a CRM's own latency)."""
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/services/oauth2/token", self.token, methods=["POST"]),
                Route(
                    f"/services/data/{V}/sobjects/{{obj}}/describe", self.describe, methods=["GET"]
                ),
                Route(
                    f"/services/data/{V}/composite/sobjects/{{obj}}/{{field}}",
                    self.upsert,
                    methods=["PATCH"],
                ),
                Route(f"/services/data/{V}/query", self.query, methods=["GET"]),
                Route(f"/services/data/{V}/query/{{cursor}}", self.query_more, methods=["GET"]),
            ]
        )

    def add_fields(self, obj: str, fields: list[str], external: str | None = None) -> None:
        self.custom.setdefault(obj, []).extend(fields)
        if external:
            self.external.setdefault(obj, set()).add(external)

    # --- OAuth --------------------------------------------------------------------------------
    async def token(self, request: Request) -> JSONResponse:
        form = await request.form()
        grant = form.get("grant_type")
        ok = False
        if grant == "client_credentials":
            ok = (
                form.get("client_id") == self.client_id
                and form.get("client_secret") == self.client_secret
            )
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer" and self.public_key is not None:
            import jwt

            try:
                claims = jwt.decode(str(form.get("assertion")), self.public_key, algorithms=["RS256"],
                                    audience=self.base_url)  # fmt: skip
                ok = claims.get("iss") == self.client_id and claims.get("sub") == self.username
            except jwt.PyJWTError:
                ok = False
        if not ok:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "invalid client credentials"},
                status_code=400,
            )
        token = "00D!" + secrets.token_hex(16)
        with self.lock:
            self.sessions[token] = 0
            self.tokens_issued += 1
        return JSONResponse({"access_token": token, "instance_url": self.base_url, "token_type": "Bearer",
                             "issued_at": str(int(datetime.now(UTC).timestamp() * 1000))})  # fmt: skip

    def _gate(self, request: Request) -> JSONResponse | None:
        with self.lock:
            if self.fail_next:
                return _errs(self.fail_next.pop(0), "SERVER_UNAVAILABLE", "try again")
            token = (request.headers.get("authorization") or "").removeprefix("Bearer ")
            if token not in self.sessions or self.sessions[token] >= self.session_calls:
                return _errs(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if self.used >= self.daily_limit:
                return _errs(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.sessions[token] += 1
            self.used += 1
        return None

    def _limits(self, r: JSONResponse) -> JSONResponse:
        r.headers["Sforce-Limit-Info"] = f"api-usage={self.used}/{self.daily_limit}"
        return r

    def _fields(self, obj: str) -> list[str]:
        return STANDARD.get(obj, ["Id"]) + self.custom.get(obj, [])

    async def describe(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        obj = request.path_params["obj"]
        ext = self.external.get(obj, set())
        fields = [{"name": f, "externalId": f in ext, "unique": f in ext, "idLookup": f in ext or f == "Id"}
                  for f in self._fields(obj)]  # fmt: skip
        return self._limits(JSONResponse({"name": obj, "fields": fields}))

    async def upsert(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        obj, ext = request.path_params["obj"], request.path_params["field"]
        body = await request.json()
        if self.stall:
            await asyncio.sleep(self.stall)
        records = body.get("records") or []
        if len(records) > 200:
            return _errs(
                400, "EXCEEDED_ID_LIMIT", "Maximum number of records in a collection is 200"
            )
        if ext not in self.external.get(obj, set()):
            return _errs(
                400,
                "INVALID_FIELD",
                f"Field name provided, {ext} is not an External ID or indexed field for {obj}",
            )
        known = set(self._fields(obj))
        for r in records:
            for f in r:
                if f != "attributes" and f not in known:
                    return _errs(
                        400, "INVALID_FIELD", f"No such column '{f}' on sobject of type {obj}"
                    )
        counts: dict[str, int] = {}
        for r in records:
            counts[str(r.get(ext))] = counts.get(str(r.get(ext)), 0) + 1
        out = []
        with self.lock:
            for r in records:
                key = str(r.get(ext))
                fields = {k: v for k, v in r.items() if k != "attributes"}
                if key in self.duplicated:
                    out.append(
                        {
                            "success": False,
                            "errors": [
                                {
                                    "statusCode": "DUPLICATE_EXTERNAL_ID",
                                    "message": f"{ext}: more than one record found for external id field: [{key}]",
                                    "fields": [ext],
                                }
                            ],
                        }
                    )
                    continue
                if counts[key] > 1:
                    out.append(
                        {
                            "success": False,
                            "errors": [
                                {
                                    "statusCode": "DUPLICATE_EXTERNAL_ID",
                                    "message": f"Duplicate external id specified: {key}",
                                    "fields": [ext],
                                }
                            ],
                        }
                    )
                    continue
                if fields.get("Email") and not EMAIL.match(str(fields["Email"])):
                    out.append(
                        {
                            "success": False,
                            "errors": [
                                {
                                    "statusCode": "INVALID_EMAIL_ADDRESS",
                                    "message": f"Email: invalid email address: {fields['Email']}",
                                    "fields": ["Email"],
                                }
                            ],
                        }
                    )
                    continue
                existing = self.records[obj].get(key)
                if existing is None:
                    missing = [f for f in REQUIRED[obj] if not fields.get(f)]
                    if missing:
                        out.append(
                            {
                                "success": False,
                                "errors": [
                                    {
                                        "statusCode": "REQUIRED_FIELD_MISSING",
                                        "message": f"Required fields are missing: [{', '.join(missing)}]",
                                        "fields": missing,
                                    }
                                ],
                            }
                        )
                        continue
                    sid = f"00Q{next(self.ids):012d}"
                    self.records[obj][key] = {"Id": sid, **fields}
                    out.append({"id": sid, "success": True, "errors": [], "created": True})
                else:
                    existing.update(fields)
                    out.append(
                        {"id": existing["Id"], "success": True, "errors": [], "created": False}
                    )
            self.upserts.append((obj, [str(r.get(ext)) for r in records]))
        return self._limits(JSONResponse(out))

    # --- SOQL (the one query shape pqlkit sends: opportunities changed since a time) -------------
    def _select(self, soql: str) -> list[dict[str, Any]]:
        m = re.search(r"WHERE SystemModstamp >= (\S+)", soql)
        since = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")) if m else None
        rows = [o for o in self.opportunities
                if since is None or datetime.fromisoformat(o["SystemModstamp"].replace("Z", "+00:00")) >= since]  # fmt: skip
        rows.sort(key=lambda o: (o["SystemModstamp"], o["Id"]))
        return [{"attributes": {"type": "Opportunity"}, **o} for o in rows]

    def _page(self, rows: list[dict[str, Any]], start: int, cursor: str) -> JSONResponse:
        page = rows[start : start + self.page_size]
        done = start + self.page_size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": page}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/{V}/query/{cursor}-{start + self.page_size}"
        return self._limits(JSONResponse(body))

    async def query(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        soql = request.query_params.get("q", "")
        if "FROM Opportunity" not in soql:
            return _errs(400, "MALFORMED_QUERY", "unexpected query")
        cursor = f"01g{next(self.ids):09d}"
        self._cursors = getattr(self, "_cursors", {})
        self._cursors[cursor] = self._select(soql)
        return self._page(self._cursors[cursor], 0, cursor)

    async def query_more(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        cursor, start = request.path_params["cursor"].rsplit("-", 1)
        return self._page(self._cursors[cursor], int(start), cursor)
