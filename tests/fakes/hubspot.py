"""A HubSpot CRM v3 fake: private-app bearer tokens, the 10-second rolling limit (429 with the
X-HubSpot-RateLimit headers and Retry-After), properties and groups, batch upsert (at most 100
inputs; a bad e-mail or an unknown property fails the whole batch with 400, as HubSpot does),
deals search with paging and its 10,000-result cap, v4 association batch reads, batch reads."""

from __future__ import annotations

import collections
import itertools
import re
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _err(status: int, category: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "message": message, "category": category, **extra}, status_code=status
    )


class FakeHubSpot:
    def __init__(self, token: str = "pat-test", calls_per_10s: int = 100, window: float = 10.0):
        self.token = token
        self.limit = calls_per_10s
        self.window = window
        self.lock = threading.Lock()
        self.times: collections.deque[float] = collections.deque()
        self.ids = itertools.count(1001)
        self.properties: dict[str, dict[str, dict[str, Any]]] = {
            "contacts": {
                p: {"name": p, "type": "string"} for p in ("email", "firstname", "lastname")
            },
            "companies": {p: {"name": p, "type": "string"} for p in ("domain", "name")},
            "deals": {},
        }
        self.groups: dict[str, set[str]] = {"contacts": set(), "companies": set()}
        self.objects: dict[str, dict[str, dict[str, Any]]] = {
            "contacts": {},
            "companies": {},
            "deals": {},
        }
        self.associations: dict[tuple[str, str], dict[str, list[str]]] = collections.defaultdict(
            dict
        )
        self.calls = 0
        self.limited = 0
        self.index: dict[tuple[str, str], dict[str, str]] = {}
        """(object, property) → normalised value → id, for the properties upserts match by."""
        self.upserts: list[tuple[str, list[str]]] = []
        """(object, ids) of every accepted batch upsert."""
        self.fail_next: list[int] = []
        """Statuses to answer the next calls with (e.g. 503), before anything else."""
        self.stall: float = 0.0
        """Seconds each batch upsert takes (a slow CRM)."""
        self.app = Starlette(
            routes=[
                Route("/crm/v3/properties/{object}", self.list_properties, methods=["GET"]),
                Route("/crm/v3/properties/{object}", self.create_property, methods=["POST"]),
                Route("/crm/v3/properties/{object}/groups", self.list_groups, methods=["GET"]),
                Route("/crm/v3/properties/{object}/groups", self.create_group, methods=["POST"]),
                Route("/crm/v3/objects/{object}/batch/upsert", self.batch_upsert, methods=["POST"]),
                Route("/crm/v3/objects/{object}/batch/read", self.batch_read, methods=["POST"]),
                Route("/crm/v3/objects/deals/search", self.search_deals, methods=["POST"]),
                Route(
                    "/crm/v4/associations/{a}/{b}/batch/read",
                    self.read_associations,
                    methods=["POST"],
                ),
            ]
        )

    # --- the gate every call passes -------------------------------------------------------
    def _gate(self, request: Request) -> JSONResponse | None:
        with self.lock:
            self.calls += 1
            if self.fail_next:
                return _err(self.fail_next.pop(0), "SERVER_ERROR", "try again")
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return _err(
                    401,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found. This API supports OAuth 2.0 authentication",
                )
            now = time.monotonic()
            while self.times and now - self.times[0] >= self.window:
                self.times.popleft()
            if len(self.times) >= self.limit:
                self.limited += 1
                wait = self.window - (now - self.times[0])
                r = JSONResponse(
                    {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                     "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
                    status_code=429,
                    headers={"Retry-After": f"{max(wait, 0.05):.2f}", "X-HubSpot-RateLimit-Max": str(self.limit),
                             "X-HubSpot-RateLimit-Remaining": "0"},
                )  # fmt: skip
                return r
            self.times.append(now)
        if self.stall and request.url.path.endswith("/batch/upsert"):
            time.sleep(self.stall)
        return None

    # --- properties ---------------------------------------------------------------------------
    async def list_properties(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        return JSONResponse(
            {"results": list(self.properties[request.path_params["object"]].values())}
        )

    async def create_property(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        obj, body = request.path_params["object"], await request.json()
        for k in ("name", "label", "type", "fieldType", "groupName"):
            if k not in body:
                return _err(400, "VALIDATION_ERROR", f"{k} is required")
        if body["groupName"] not in self.groups[obj]:
            return _err(
                400, "VALIDATION_ERROR", f"property group {body['groupName']} does not exist"
            )
        if body["name"] in self.properties[obj]:
            return _err(
                409, "OBJECT_ALREADY_EXISTS", f"Property named '{body['name']}' already exists."
            )
        self.properties[obj][body["name"]] = body
        return JSONResponse(body, status_code=201)

    async def list_groups(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        return JSONResponse(
            {"results": [{"name": g} for g in self.groups[request.path_params["object"]]]}
        )

    async def create_group(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        obj, body = request.path_params["object"], await request.json()
        if body["name"] in self.groups[obj]:
            return _err(409, "OBJECT_ALREADY_EXISTS", "group exists")
        self.groups[obj].add(body["name"])
        return JSONResponse(body, status_code=201)

    # --- records ------------------------------------------------------------------------------
    @staticmethod
    def _norm(prop: str, value: str) -> str:
        return value.lower() if prop in ("email", "domain") else value

    def _find(self, obj: str, prop: str, value: str) -> str | None:
        return self.index.get((obj, prop), {}).get(self._norm(prop, value))

    def _indexed(self, obj: str, hid: str) -> None:
        """Index an object by each of its properties that records can be upserted by."""
        for prop, v in self.objects[obj][hid].items():
            if v is not None and (
                prop in ("email", "domain")
                or self.properties[obj].get(prop, {}).get("hasUniqueValue")
            ):
                self.index.setdefault((obj, prop), {})[self._norm(prop, str(v))] = hid

    async def batch_upsert(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        obj, body = request.path_params["object"], await request.json()
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            return _err(
                400, "VALIDATION_ERROR", f"Batch input size {len(inputs)} exceeds the limit of 100"
            )
        seen = set()
        for i in inputs:
            key = str(i["id"]).lower()
            if key in seen:
                return _err(
                    400,
                    "VALIDATION_ERROR",
                    f"Duplicate IDs found in batch input: [{i['id']}]. IDs must be unique",
                )
            seen.add(key)
            prop = i.get("idProperty")
            spec = self.properties[obj].get(prop)
            if spec is None or (prop != "email" and not spec.get("hasUniqueValue")):
                return _err(
                    400,
                    "VALIDATION_ERROR",
                    f"{prop} is not a unique property and cannot be used as idProperty",
                )
            unknown = sorted(p for p in i.get("properties", {}) if p not in self.properties[obj])
            if unknown:
                return _err(
                    400, "VALIDATION_ERROR", f'Property "{unknown[0]}" does not exist',
                    errors=[{"message": f'Property "{u}" does not exist', "code": "PROPERTY_DOESNT_EXIST",
                             "context": {"propertyName": [u]}} for u in unknown],
                )  # fmt: skip
            email = (i.get("properties") or {}).get("email") if obj == "contacts" else None
            if (obj == "contacts" and not EMAIL.match(str(i["id"]))) or (
                email and not EMAIL.match(email)
            ):
                bad = i["id"]
                return _err(
                    400, "VALIDATION_ERROR",
                    f'Property values were not valid: [{{"isValid":false,"message":"Email address {bad} is invalid","error":"INVALID_EMAIL","name":"email"}}]',
                    errors=[{"message": f"Email address {bad} is invalid", "code": "INVALID_EMAIL", "context": {"propertyName": ["email"]}}],
                )  # fmt: skip
        results = []
        with self.lock:
            for i in inputs:
                prop = i["idProperty"]
                hid = self._find(obj, prop, str(i["id"]))
                new = hid is None
                if new:
                    hid = str(next(self.ids))
                    self.objects[obj][hid] = {
                        prop: str(i["id"]).lower() if prop == "email" else str(i["id"])
                    }
                self.objects[obj][hid].update(
                    {
                        k: (v.lower() if k == "email" else v)
                        for k, v in (i.get("properties") or {}).items()
                    }
                )
                self.objects[obj][hid]["hs_lastmodifieddate"] = _now_iso()
                self._indexed(obj, hid)
                results.append({"id": hid, "properties": dict(self.objects[obj][hid]), "new": new})
            self.upserts.append((obj, [str(i["id"]) for i in inputs]))
        return JSONResponse({"status": "COMPLETE", "results": results})

    async def batch_read(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        obj, body = request.path_params["object"], await request.json()
        props = body.get("properties") or []
        out = [
            {"id": i["id"], "properties": {p: self.objects[obj][i["id"]].get(p) for p in props}}
            for i in body.get("inputs", [])
            if i["id"] in self.objects[obj]
        ]
        return JSONResponse({"status": "COMPLETE", "results": out})

    # --- deals --------------------------------------------------------------------------------
    def add_deal(
        self, props: dict[str, Any], contacts: list[str] = (), companies: list[str] = ()
    ) -> str:
        hid = str(next(self.ids))
        self.clock = max(time.time(), getattr(self, "clock", 0.0) + 0.001)  # one deal a ms
        self.objects["deals"][hid] = {"hs_lastmodifieddate": _iso(self.clock), **props}
        self.associations[("deals", "contacts")][hid] = list(contacts)
        self.associations[("deals", "companies")][hid] = list(companies)
        return hid

    def add_contact(self, props: dict[str, Any]) -> str:
        hid = str(next(self.ids))
        self.objects["contacts"][hid] = dict(props)
        self._indexed("contacts", hid)
        return hid

    def add_company(self, props: dict[str, Any]) -> str:
        hid = str(next(self.ids))
        self.objects["companies"][hid] = dict(props)
        self._indexed("companies", hid)
        return hid

    async def search_deals(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        body = await request.json()
        limit = int(body.get("limit", 10))
        if limit > 200:
            return _err(400, "VALIDATION_ERROR", "limit must be at most 200")
        after = int(body.get("after") or 0)
        if after >= 10_000:
            return _err(400, "VALIDATION_ERROR", "The search API returns at most 10,000 results")
        since = None
        for g in body.get("filterGroups") or []:
            for f in g.get("filters") or []:
                if f["propertyName"] == "hs_lastmodifieddate" and f["operator"] == "GTE":
                    since = int(f["value"])
        rows = [
            (hid, p) for hid, p in self.objects["deals"].items()
            if since is None or _ms(p["hs_lastmodifieddate"]) >= since
        ]  # fmt: skip
        rows.sort(key=lambda x: (_ms(x[1]["hs_lastmodifieddate"]), int(x[0])))
        page = rows[after : after + limit]
        props = body.get("properties") or []
        out: dict[str, Any] = {
            "total": len(rows),
            "results": [{"id": hid, "properties": {k: p.get(k) for k in props}} for hid, p in page],
        }
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return JSONResponse(out)

    async def read_associations(self, request: Request) -> JSONResponse:
        if (e := self._gate(request)) is not None:
            return e
        a, b = request.path_params["a"], request.path_params["b"]
        body = await request.json()
        table = self.associations[(a, b)]
        out = [
            {
                "from": {"id": i["id"]},
                "to": [{"toObjectId": int(t), "associationTypes": []} for t in table[i["id"]]],
            }
            for i in body.get("inputs", [])
            if table.get(i["id"])
        ]
        return JSONResponse({"status": "COMPLETE", "results": out})


def _now_iso() -> str:
    return _iso(time.time())


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
