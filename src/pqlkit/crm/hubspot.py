"""HubSpot's CRM v3 API: properties, batch upsert (100 records a call), deals read back.

Calls go through :class:`~pqlkit.crm.transport.Transport` (paced to the app's 10-second burst
limit, 429 and 5xx retried). A batch HubSpot refuses whole (a 400: one bad e-mail fails the
other 99) is split in halves until the bad records stand alone, so each gets its own error and
no other record in the batch is lost; a missing property fails the batch at once (splitting
cannot help) with the property named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from ..model.crm import HubSpotDestination
from ..model.signals import duration_seconds
from .records import Record
from .transport import CrmAuthError, CrmError, Transport, Window

BATCH = 100
"""Records per batch upsert call (HubSpot's limit)."""
SEARCH_PAGE = 200
SEARCH_CAP = 10_000
"""A search returns at most this many results; past it, search again from the last date."""
_TYPES: dict[str, dict[str, Any]] = {
    "text": {"type": "string", "fieldType": "text"},
    "number": {"type": "number", "fieldType": "number"},
    "datetime": {"type": "datetime", "fieldType": "date"},
    "bool": {
        "type": "bool",
        "fieldType": "booleancheckbox",
        "options": [
            {"label": "Yes", "value": "true", "displayOrder": 0},
            {"label": "No", "value": "false", "displayOrder": 1},
        ],
    },
}
DEAL_PROPERTIES = [
    "dealname", "dealstage", "pipeline", "amount", "createdate", "closedate",
    "hs_is_closed", "hs_is_closed_won", "hs_lastmodifieddate",
]  # fmt: skip


@dataclass(frozen=True)
class Result:
    """What the CRM did with one record."""

    key: str
    ok: bool
    action: str
    """created, updated or failed."""
    crm_id: str | None = None
    status: int | None = None
    error: str | None = None


def error_text(response: httpx.Response) -> str:
    """HubSpot's error message, with the property it names when it names one."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}: {str(body)[:300]}"
    message = str(body.get("message") or body)
    props: set[str] = set()
    for err in body.get("errors") or []:
        context = err.get("context") or {}
        props.update(context.get("propertyName") or [])
    where = f" (property {', '.join(sorted(props))})" if props else ""
    return f"HTTP {response.status_code} {body.get('category', '')}: {message}{where}".replace(
        "  ", " "
    )


def _batch_wide(response: httpx.Response) -> bool:
    """A 400 that every record of the batch would get (a missing property, an upsert key that
    is not a unique property): halving the batch cannot help."""
    text = response.text
    return any(
        marker in text
        for marker in ("PROPERTY_DOESNT_EXIST", "does not exist", "unique property", "idProperty")
    )


class HubSpot:
    def __init__(
        self,
        dest: HubSpotDestination,
        token: str,
        client: httpx.Client,
        *,
        sleep: Callable[[float], None] | None = None,
        give_up_after: float = 300.0,
    ) -> None:
        import time

        self.dest = dest
        sleep = sleep or time.sleep
        self.http = Transport(
            client,
            dest.base_url,
            name=f"HubSpot ({dest.id})",
            timeout=duration_seconds(dest.timeout),
            headers=lambda: {"authorization": f"Bearer {token}"},
            window=Window(dest.calls_per_10s, 10.0, sleep),
            give_up_after=give_up_after,
            sleep=sleep,
        )

    def _check(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code in (401, 403):
            raise CrmAuthError(
                f"HubSpot ({self.dest.id}) refused {what}: {error_text(response)}; check the "
                f"private app token in {self.dest.token_env} and its scopes"
            )
        if response.status_code >= 400:
            raise CrmError(f"HubSpot ({self.dest.id}) {what}: {error_text(response)}")
        return response.json() if response.content else {}

    # --- properties ----------------------------------------------------------------------------
    def ensure_properties(
        self, object: str, mapping: dict[str, str], kinds: dict[str, str], unique: str | None
    ) -> list[str]:
        """Create the mapped properties HubSpot lacks (in the destination's group); return
        their names."""
        found = self._check(
            self.http.call("GET", f"/crm/v3/properties/{object}"), f"listing {object} properties"
        )
        have = {p["name"] for p in found.get("results", [])}
        missing = [p for p in mapping if p not in have]
        if not missing:
            return []
        groups = self._check(
            self.http.call("GET", f"/crm/v3/properties/{object}/groups"), f"listing {object} groups"
        )
        if self.dest.group not in {g["name"] for g in groups.get("results", [])}:
            r = self.http.call(
                "POST",
                f"/crm/v3/properties/{object}/groups",
                json={"name": self.dest.group, "label": "pqlkit", "displayOrder": -1},
            )
            if r.status_code != 409:
                self._check(r, f"creating the {object} property group {self.dest.group!r}")
        for prop in missing:
            body: dict[str, Any] = {
                "name": prop,
                "label": prop.replace("_", " ").strip().capitalize(),
                "groupName": self.dest.group,
                **_TYPES[kinds[mapping[prop]]],
            }
            if prop == unique:
                body["hasUniqueValue"] = True
            r = self.http.call("POST", f"/crm/v3/properties/{object}", json=body)
            if r.status_code != 409:
                self._check(r, f"creating the {object} property {prop!r}")
        return missing

    # --- writing -------------------------------------------------------------------------------
    def upsert(self, object: str, id_property: str, records: list[Record]) -> list[Result]:
        """Upsert up to 100 records; a result for each."""
        if not records:
            return []
        if len(records) > BATCH:
            raise ValueError(f"at most {BATCH} records a call")
        body = {
            "inputs": [
                {"idProperty": id_property, "id": r.crm_key, "properties": r.fields}
                for r in records
            ]
        }
        response = self.http.call("POST", f"/crm/v3/objects/{object}/batch/upsert", json=body)
        status = response.status_code
        if status in (401, 403):
            self._check(response, f"upserting {object}")
        if status in (200, 201, 207):
            return self._results(records, id_property, response)
        if status == 400 and len(records) > 1 and not _batch_wide(response):
            half = len(records) // 2
            return self.upsert(object, id_property, records[:half]) + self.upsert(
                object, id_property, records[half:]
            )
        error = error_text(response)
        return [Result(r.key, False, "failed", None, status, error) for r in records]

    def _results(
        self, records: list[Record], id_property: str, response: httpx.Response
    ) -> list[Result]:
        body = response.json()
        by_key = {r.crm_key.lower(): r for r in records}
        out: dict[str, Result] = {}
        for item in body.get("results", []):
            value = str((item.get("properties") or {}).get(id_property, "")).lower()
            r = by_key.get(value)
            if r is not None:
                action = "created" if item.get("new") else "updated"
                out[r.key] = Result(r.key, True, action, str(item.get("id")), response.status_code)
        for err in body.get("errors", []):
            ids = [str(i).lower() for i in (err.get("context") or {}).get("ids", [])]
            for value in ids:
                r = by_key.get(value)
                if r is not None and r.key not in out:
                    message = f"{err.get('category', 'ERROR')}: {err.get('message', '')}"
                    out[r.key] = Result(
                        r.key,
                        False,
                        "failed",
                        None,
                        int(
                            err.get("status", 400) if str(err.get("status", "")).isdigit() else 400
                        ),
                        message,
                    )
        return [
            out.get(r.key)
            or Result(
                r.key,
                False,
                "failed",
                None,
                response.status_code,
                "HubSpot returned no result for this record; sent again at the next sync",
            )
            for r in records
        ]

    # --- reading -------------------------------------------------------------------------------
    def deals(self, since: datetime | None) -> Iterator[dict[str, Any]]:
        """Deals modified at or after ``since`` (all: None), oldest change first. A search
        stops at 10,000 results: past them, search again from the last modification seen."""
        start = since
        while True:
            after: str | None = None
            seen = 0
            last: datetime | None = None
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [],
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                    "properties": DEAL_PROPERTIES,
                    "limit": SEARCH_PAGE,
                }
                if start is not None:
                    body["filterGroups"] = [
                        {
                            "filters": [
                                {
                                    "propertyName": "hs_lastmodifieddate",
                                    "operator": "GTE",
                                    "value": str(_ms(start)),
                                }
                            ]
                        }
                    ]
                if after is not None:
                    body["after"] = after
                page = self._check(
                    self.http.call("POST", "/crm/v3/objects/deals/search", json=body),
                    "searching deals",
                )
                for deal in page.get("results", []):
                    seen += 1
                    last = (
                        parse_time((deal.get("properties") or {}).get("hs_lastmodifieddate"))
                        or last
                    )
                    yield deal
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if after is None:
                    return
                if seen + SEARCH_PAGE > SEARCH_CAP:
                    break  # the cap: search again from the last date (repeats are upserts)
            if last is None or (start is not None and last <= start):
                raise CrmError(
                    "HubSpot: more than 10,000 deals share one modification time; the search "
                    "cannot page past them"
                )
            start = last

    def associations(
        self, from_object: str, to_object: str, ids: list[str]
    ) -> dict[str, list[str]]:
        """from id → associated ids (v4 batch read, 1,000 ids a call)."""
        out: dict[str, list[str]] = {}
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            body = {"inputs": [{"id": x} for x in chunk]}
            r = self.http.call(
                "POST", f"/crm/v4/associations/{from_object}/{to_object}/batch/read", json=body
            )
            data = self._check(r, f"reading {from_object} → {to_object} associations")
            for item in data.get("results", []):
                out[str(item["from"]["id"])] = [str(t["toObjectId"]) for t in item.get("to", [])]
        return out

    def read(self, object: str, ids: list[str], properties: list[str]) -> dict[str, dict[str, Any]]:
        """id → properties (batch read, 100 ids a call)."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), BATCH):
            body = {"properties": properties, "inputs": [{"id": x} for x in ids[i : i + BATCH]]}
            r = self.http.call("POST", f"/crm/v3/objects/{object}/batch/read", json=body)
            if r.status_code == 207 or r.status_code < 400:
                for item in r.json().get("results", []):
                    out[str(item["id"])] = item.get("properties") or {}
            else:
                self._check(r, f"reading {object}")
        return out


def _ms(t: datetime) -> int:
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t
    return int(t.timestamp() * 1000)


def parse_time(raw: Any) -> datetime | None:
    """A HubSpot date-time (ISO 8601 or epoch milliseconds) as naive UTC."""
    if raw in (None, ""):
        return None
    text = str(raw)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC).replace(tzinfo=None)
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (t.astimezone(UTC) if t.tzinfo else t).replace(tzinfo=None)


__all__ = ["BATCH", "HubSpot", "Result", "parse_time"]
