"""Salesforce's REST API: OAuth (client credentials or JWT bearer), describe, sObject
Collections upsert by external id (200 records a call, a result per record), SOQL read back.

Calls go through :class:`~pqlkit.crm.transport.Transport`: a 401 (expired session) fetches a
new token and repeats the call once; 5xx and 429 are retried. Every answer's
``Sforce-Limit-Info`` header says how much of the org's daily allowance is used: the sync stops
before it eats into ``daily_reserve`` (what is unsent goes at the next sync).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from ..model.crm import SalesforceDestination
from ..model.signals import duration_seconds
from .hubspot import Result
from .records import Record
from .transport import CrmAuthError, CrmError, CrmUnavailable, Transport

BATCH = 200
"""Records per sObject Collections call (Salesforce's limit)."""
_LIMIT = re.compile(r"api-usage=(\d+)/(\d+)")


def error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    items = body if isinstance(body, list) else [body]
    parts = []
    for item in items:
        if not isinstance(item, dict):
            continue
        code = item.get("errorCode") or item.get("error") or "ERROR"
        message = item.get("message") or item.get("error_description") or ""
        fields = item.get("fields") or []
        where = f" (field {', '.join(fields)})" if fields else ""
        parts.append(f"{code}: {message}{where}")
    return f"HTTP {response.status_code} " + ("; ".join(parts) or response.text[:300])


class Salesforce:
    def __init__(
        self,
        dest: SalesforceDestination,
        secrets: list[str],
        client: httpx.Client,
        *,
        sleep: Callable[[float], None] | None = None,
        give_up_after: float = 300.0,
    ) -> None:
        self.dest = dest
        self.client = client
        self.secrets = secrets
        self.token: str | None = None
        self.instance_url: str | None = None
        self.used: int | None = None
        self.allowed: int | None = None
        self.http = Transport(
            client,
            "",
            name=f"Salesforce ({dest.id})",
            timeout=duration_seconds(dest.timeout),
            headers=self._headers,
            refresh=self.authenticate,
            give_up_after=give_up_after,
            sleep=sleep or time.sleep,
        )
        self.http.on_response = self._note_limits
        self.base = f"/services/data/v{dest.api_version}"

    # --- OAuth -------------------------------------------------------------------------------
    def authenticate(self) -> None:
        d = self.dest
        client_id = self.secrets[0]
        if d.auth == "client_credentials":
            data = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": self.secrets[1],
            }
        else:
            import jwt

            claims = {
                "iss": client_id,
                "sub": d.username,
                "aud": d.login_url,
                "exp": datetime.now(UTC) + timedelta(minutes=3),
            }
            try:
                assertion = jwt.encode(claims, self.secrets[1], algorithm="RS256")
            except (ValueError, TypeError) as exc:
                raise CrmError(
                    f"Salesforce ({d.id}): {d.private_key_env} is not a PEM private key ({exc})"
                ) from None
            data = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            }
        try:
            r = self.client.post(
                d.login_url + "/services/oauth2/token",
                data=data,
                timeout=duration_seconds(d.timeout),
            )
        except httpx.HTTPError as exc:
            raise CrmUnavailable(
                f"Salesforce ({d.id}): no token ({type(exc).__name__}: {exc})"
            ) from None
        if r.status_code != 200:
            raise CrmAuthError(
                f"Salesforce ({d.id}) refused the {d.auth} sign-in: {error_text(r)}; check "
                f"{', '.join(d.env_names())} and the connected app"
            )
        body = r.json()
        self.token = body["access_token"]
        self.instance_url = body["instance_url"].rstrip("/")
        self.http.base_url = self.instance_url

    def _headers(self) -> dict[str, str]:
        if self.token is None:
            self.authenticate()
        return {"authorization": f"Bearer {self.token}"}

    def _note_limits(self, response: httpx.Response) -> None:
        m = _LIMIT.search(response.headers.get("sforce-limit-info", ""))
        if m:
            self.used, self.allowed = int(m.group(1)), int(m.group(2))

    def check_allowance(self) -> None:
        """Stop before the org's daily allowance falls under the reserve."""
        if self.used is None or self.allowed is None:
            return
        left = self.allowed - self.used
        if left <= self.dest.daily_reserve:
            raise CrmUnavailable(
                f"Salesforce ({self.dest.id}): {left} of the org's {self.allowed} daily API calls "
                f"left, at or under daily_reserve {self.dest.daily_reserve}; the rest is sent "
                "at the next sync"
            )

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.instance_url is None:
            self.authenticate()
        self.check_allowance()
        r = self.http.call(method, path, **kwargs)
        if r.status_code == 401:
            raise CrmAuthError(
                f"Salesforce ({self.dest.id}) refused the session even after a new token: "
                f"{error_text(r)}"
            )
        if r.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in r.text:
            raise CrmUnavailable(
                f"Salesforce ({self.dest.id}): the org's daily API limit is reached "
                f"({error_text(r)}); the rest is sent at the next sync"
            )
        return r

    # --- describe ------------------------------------------------------------------------------
    def check_fields(self, sobject: str, fields: list[str], external_id: str) -> None:
        """Every mapped field exists on ``sobject`` and ``external_id`` is an external id."""
        r = self._call("GET", f"{self.base}/sobjects/{sobject}/describe")
        if r.status_code >= 400:
            raise CrmError(f"Salesforce ({self.dest.id}) describing {sobject}: {error_text(r)}")
        have = {f["name"].lower(): f for f in r.json().get("fields", [])}
        missing = [f for f in fields if f.lower() not in have]
        if missing:
            raise CrmError(
                f"Salesforce ({self.dest.id}): {sobject} has no field {', '.join(missing)}; "
                f"create them (Setup → Object Manager → {sobject} → Fields) or change the "
                f"mapping in handoff.destinations[{self.dest.id}]"
            )
        ext = have[external_id.lower()]
        if not (ext.get("externalId") or (ext.get("idLookup") and ext.get("unique"))):
            raise CrmError(
                f"Salesforce ({self.dest.id}): {sobject}.{external_id} is not an External ID "
                "field; tick External ID (and Unique) on it"
            )

    # --- writing -------------------------------------------------------------------------------
    def upsert(self, sobject: str, external_id: str, records: list[Record]) -> list[Result]:
        if not records:
            return []
        if len(records) > BATCH:
            raise ValueError(f"at most {BATCH} records a call")
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": sobject}, **r.fields} for r in records],
        }
        r = self._call(
            "PATCH", f"{self.base}/composite/sobjects/{sobject}/{external_id}", json=body
        )
        if r.status_code != 200:
            if r.status_code in (401, 403) and "REQUEST_LIMIT" not in r.text:
                raise CrmAuthError(
                    f"Salesforce ({self.dest.id}) refused upserting {sobject}: {error_text(r)}"
                )
            error = error_text(r)
            return [Result(x.key, False, "failed", None, r.status_code, error) for x in records]
        items = r.json()
        out = []
        for rec, item in zip(records, items, strict=False):
            if item.get("success"):
                action = "created" if item.get("created") else "updated"
                out.append(Result(rec.key, True, action, item.get("id"), r.status_code))
            else:
                errors = item.get("errors") or []
                text = "; ".join(
                    f"{e.get('statusCode', 'ERROR')}: {e.get('message', '')}"
                    + (f" (field {', '.join(e['fields'])})" if e.get("fields") else "")
                    for e in errors
                )
                out.append(Result(rec.key, False, "failed", item.get("id"), 200, text or "failed"))
        for rec in records[len(items) :]:
            out.append(Result(rec.key, False, "failed", None, 200, "no result for this record"))
        return out

    # --- reading -------------------------------------------------------------------------------
    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record a SOQL query returns, page after page."""
        r = self._call("GET", f"{self.base}/query?q={quote(soql)}")
        while True:
            if r.status_code >= 400:
                raise CrmError(f"Salesforce ({self.dest.id}) query: {error_text(r)}")
            body = r.json()
            yield from body.get("records", [])
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return
            r = self._call("GET", body["nextRecordsUrl"])

    def opportunities_soql(self, since: datetime | None) -> str:
        d = self.dest
        account = ["Account.Website"]
        if d.account_fields is not None:
            account.append(f"Account.{d.account_external_id}")
        contact = ["ContactId", "IsPrimary", "Contact.Email"]
        if d.person == "Contact" and d.person_fields is not None:
            contact.append(f"Contact.{d.person_external_id}")
        where = f" WHERE SystemModstamp >= {soql_time(since)}" if since is not None else ""
        return (
            "SELECT Id, Name, StageName, IsClosed, IsWon, Amount, CreatedDate, CloseDate, "
            f"SystemModstamp, AccountId, {', '.join(account)}, "
            f"(SELECT {', '.join(contact)} FROM OpportunityContactRoles) "
            f"FROM Opportunity{where} ORDER BY SystemModstamp, Id"
        )


def soql_time(t: datetime) -> str:
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(raw: Any) -> datetime | None:
    """A Salesforce date or date-time as naive UTC."""
    if raw in (None, ""):
        return None
    text = str(raw)
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time())
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text.replace("Z", "+00:00"))
    t = datetime.fromisoformat(text)
    return (t.astimezone(UTC) if t.tzinfo else t).replace(tzinfo=None)
