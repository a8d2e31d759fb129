"""CRM destinations of the hand-off: HubSpot and Salesforce, written as diffed upserts and read
back as outcomes. Which fields go where is declared here (CRM property or field name →
pqlkit field); credentials are named by environment variable, never written in the model."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self
from urllib.parse import urlparse

from pydantic import ConfigDict, Field, field_validator, model_validator

from .signals import Duration, duration_seconds
from .strict import Strict

EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=100)]
DestinationId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]
CrmName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=100)]

#: What a user record can carry, and its type (text, number, bool, datetime).
USER_FIELDS = {
    "user_id": "text",
    "email": "text",
    "account_id": "text",
    "company": "text",
    "domain": "text",
    "last_name": "text",
    "is_pql": "bool",
    "score": "number",
    "fit_score": "number",
    "usage_score": "number",
    "mql_score": "number",
    "tier": "text",
    "segment": "text",
    "motion": "text",
    "profile": "text",
    "reasons": "text",
    "points": "number",
    "likelihood": "number",
    "grade": "text",
    "became_pql_at": "datetime",
    "as_of": "datetime",
    "model_version": "text",
}
#: What an account record can carry.
ACCOUNT_FIELDS = {
    "account_id": "text",
    "name": "text",
    "domain": "text",
    "is_pqa": "bool",
    "score": "number",
    "best_score": "number",
    "users": "number",
    "active_users": "number",
    "pql_users": "number",
    "champion_user_id": "text",
    "tier": "text",
    "segment": "text",
    "motion": "text",
    "profile": "text",
    "became_pqa_at": "datetime",
    "as_of": "datetime",
    "model_version": "text",
}
UserField = Literal[
    "user_id", "email", "account_id", "company", "domain", "last_name", "is_pql", "score",
    "fit_score", "usage_score", "mql_score", "tier", "segment", "motion", "profile", "reasons",
    "points", "likelihood", "grade", "became_pql_at", "as_of", "model_version",
]  # fmt: skip
AccountField = Literal[
    "account_id", "name", "domain", "is_pqa", "score", "best_score", "users", "active_users",
    "pql_users", "champion_user_id", "tier", "segment", "motion", "profile", "became_pqa_at",
    "as_of", "model_version",
]  # fmt: skip
_PQL = ("is_pql", "score", "tier", "segment", "motion", "profile", "reasons")
_PQA = ("is_pqa", "score", "tier", "segment", "motion", "profile")

HUBSPOT_CONTACTS: dict[str, Any] = {
    "email": "email",
    "pql_user_id": "user_id",
    **{f"pql_{f}": f for f in _PQL},
    # HubSpot properties are created when missing; Salesforce fields an admin makes, so
    # these are mapped there only when asked for
    **{f"pql_{f}": f for f in ("likelihood", "grade")},
    "pql_became_pql_at": "became_pql_at",
    "pql_model_version": "model_version",
    "pql_as_of": "as_of",
}
HUBSPOT_COMPANIES: dict[str, Any] = {
    "pql_account_id": "account_id",
    "domain": "domain",
    **{f"pql_{f}": f for f in _PQA},
    "pql_became_pqa_at": "became_pqa_at",
    "pql_model_version": "model_version",
    "pql_as_of": "as_of",
}
SALESFORCE_PERSON: dict[str, Any] = {
    "Pqlkit_Id__c": "user_id",
    "Email": "email",
    "LastName": "last_name",
    "PQL__c": "is_pql",
    **{f"PQL_{f.title()}__c": f for f in _PQL if f != "is_pql"},
    "PQL_Became_PQL_At__c": "became_pql_at",
    "PQL_Model_Version__c": "model_version",
    "PQL_As_Of__c": "as_of",
}
SALESFORCE_LEAD: dict[str, Any] = {**SALESFORCE_PERSON, "Company": "company"}
SALESFORCE_ACCOUNT: dict[str, Any] = {
    "Pqlkit_Account_Id__c": "account_id",
    "Name": "name",
    "Website": "domain",
    "PQA__c": "is_pqa",
    **{f"PQL_{f.title()}__c": f for f in _PQA if f != "is_pqa"},
    "PQL_Became_PQA_At__c": "became_pqa_at",
    "PQL_Model_Version__c": "model_version",
    "PQL_As_Of__c": "as_of",
}


def _http_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.rstrip("/")


class SyncSchedule(Strict):
    """How often `pql serve --model` syncs a CRM by itself, each way; a direction left out is
    synced only by hand (`pql sync crm`, `pql sync outcomes`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    push: Duration | None = None
    """How often what changed is written to the CRM (what `pql sync crm` does), e.g. 15m."""
    pull: Duration | None = None
    """How often deals or opportunities changed since the last read come back as outcomes
    (what `pql sync outcomes` does), e.g. 1h."""

    @model_validator(mode="after")
    def _some(self) -> Self:
        if self.push is None and self.pull is None:
            raise ValueError("give push, pull or both (e.g. every: {push: 15m, pull: 1h})")
        for name in ("push", "pull"):
            value = getattr(self, name)
            if value is not None and duration_seconds(value) < 1:
                raise ValueError(f"{name}: {value!r} is shorter than a second")
        return self

    def directions(self) -> dict[str, float]:
        """Direction (push, pull) → seconds between syncs, for those given."""
        given = {"push": self.push, "pull": self.pull}
        return {k: duration_seconds(v) for k, v in given.items() if v is not None}


class _Crm(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: DestinationId
    """Unique id, named by routes and by `pql sync --destination`."""
    sync: Literal["pqls", "everyone"] = "pqls"
    """Which users and accounts are written: `pqls` (PQLs and PQAs, and anyone written before,
    so a lead who leaves gets `is_pql` false) or `everyone` scored."""
    timeout: Duration = "30s"
    """How long to wait for one call."""
    every: SyncSchedule | None = None
    """Sync on a schedule inside `pql serve --model`, each way: `{push: 15m, pull: 1h}` (unset:
    only the hand-off's routes and `pql sync` write or read). A failing sync is logged and
    tried again at its next time; /health and /metrics show each one's last sync and lag."""

    def person_mapping(self) -> dict[str, str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def account_mapping(self) -> dict[str, str]:  # pragma: no cover - overridden
        raise NotImplementedError


class HubSpotDestination(_Crm):
    """HubSpot: contacts upserted by e-mail and companies by a unique property, through the CRM
    v3 batch upsert endpoints (100 records a call); deals read back as outcomes."""

    kind: Literal["hubspot"]
    """`hubspot`."""
    token_env: EnvName
    """The environment variable holding a private app's access token (scopes: crm.objects.
    contacts/companies/deals read and write, crm.schemas.contacts/companies write)."""
    base_url: str = "https://api.hubapi.com"
    """The API's address (change it only for a proxy or a test server)."""
    contacts: dict[CrmName, UserField] | None = Field(default_factory=HUBSPOT_CONTACTS.copy)
    """Contact property → pqlkit field (`null`: no contacts). Must map `email`. Properties
    missing in HubSpot are created in `group`."""
    companies: dict[CrmName, AccountField] | None = Field(default_factory=HUBSPOT_COMPANIES.copy)
    """Company property → pqlkit field (`null`: no companies)."""
    company_id_property: CrmName = "pql_account_id"
    """The unique company property records are upserted by; it must map `account_id` or
    `domain` (pqlkit creates it with unique values if missing)."""
    group: CrmName = "pqlkit"
    """The property group new properties go in."""
    calls_per_10s: int = Field(default=100, ge=1, le=10000)
    """Your app's burst limit (HubSpot: 100 per 10 s for private apps on Free and Starter, 190 on
    Professional and Enterprise); calls are paced to it, and a 429 waits as told."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _keys(self) -> Self:
        if self.contacts is not None and self.contacts.get("email") != "email":
            raise ValueError("contacts must map the property `email` to `email` (the upsert key)")
        if self.companies is not None and self.companies.get(self.company_id_property) not in (
            "account_id",
            "domain",
        ):
            raise ValueError(
                f"companies must map company_id_property {self.company_id_property!r} to "
                "`account_id` or `domain` (the upsert key)"
            )
        if self.contacts is None and self.companies is None:
            raise ValueError("contacts and companies are both null: nothing to write")
        return self

    def person_mapping(self) -> dict[str, str]:
        return dict(self.contacts or {})

    def account_mapping(self) -> dict[str, str]:
        return dict(self.companies or {})

    def env_names(self) -> list[str]:
        return [self.token_env]


class SalesforceDestination(_Crm):
    """Salesforce: Leads or Contacts and Accounts upserted by external-id fields through sObject
    Collections (200 records a call, a result per record); opportunities read back."""

    kind: Literal["salesforce"]
    """`salesforce`."""
    login_url: str = "https://login.salesforce.com"
    """Where tokens come from (`https://test.salesforce.com` for a sandbox, or My Domain)."""
    auth: Literal["client_credentials", "jwt"] = "client_credentials"
    """OAuth flow of the connected app: client credentials, or JWT bearer (a certificate)."""
    client_id_env: EnvName
    """The environment variable holding the connected app's consumer key."""
    client_secret_env: EnvName | None = None
    """The environment variable holding the consumer secret (client credentials)."""
    private_key_env: EnvName | None = None
    """The environment variable holding the PEM private key (JWT bearer)."""
    username: str | None = None
    """The user the JWT bearer flow acts as (JWT bearer)."""
    api_version: Annotated[str, Field(pattern=r"^[0-9]{2,3}\.0$")] = "62.0"
    """The REST API version."""
    person: Literal["Lead", "Contact"] = "Lead"
    """Which object a user is written to."""
    person_fields: dict[CrmName, UserField] | None = Field(default_factory=SALESFORCE_LEAD.copy)
    """Field → pqlkit field for Leads or Contacts (`null`: none written). Custom fields must
    exist (checked before anything is sent). A Lead needs `LastName` and `Company`, a Contact
    `LastName` (`last_name` is the e-mail's local part when there is no name)."""
    person_external_id: CrmName = "Pqlkit_Id__c"
    """The external-id field users are upserted by; it must map `user_id`."""
    account_fields: dict[CrmName, AccountField] | None = Field(
        default_factory=SALESFORCE_ACCOUNT.copy
    )
    """Field → pqlkit field for Accounts (`null`: none written)."""
    account_external_id: CrmName = "Pqlkit_Account_Id__c"
    """The external-id field accounts are upserted by; it must map `account_id`."""
    daily_reserve: int = Field(default=1000, ge=0)
    """API calls of the org's daily allowance left for others: a sync stops (and resumes at
    the next) when fewer remain."""

    @model_validator(mode="before")
    @classmethod
    def _contact_defaults(cls, data: object) -> object:
        if (
            isinstance(data, dict)
            and data.get("person") == "Contact"
            and "person_fields" not in data
        ):
            return {**data, "person_fields": dict(SALESFORCE_PERSON)}
        return data

    @field_validator("login_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _keys(self) -> Self:
        if self.auth == "client_credentials" and self.client_secret_env is None:
            raise ValueError("auth client_credentials needs client_secret_env")
        if self.auth == "jwt" and (self.private_key_env is None or not self.username):
            raise ValueError("auth jwt needs private_key_env and username")
        if self.person_fields is not None:
            if self.person_fields.get(self.person_external_id) != "user_id":
                raise ValueError(
                    f"person_fields must map person_external_id {self.person_external_id!r} "
                    "to `user_id` (the upsert key)"
                )
            needed = ("LastName", "Company") if self.person == "Lead" else ("LastName",)
            for name in needed:
                if name not in self.person_fields:
                    raise ValueError(
                        f"person_fields must map {name} (Salesforce requires it on a {self.person})"
                    )
        if (
            self.account_fields is not None
            and self.account_fields.get(self.account_external_id) != "account_id"
        ):
            raise ValueError(
                f"account_fields must map account_external_id {self.account_external_id!r} "
                "to `account_id` (the upsert key)"
            )
        if self.person_fields is None and self.account_fields is None:
            raise ValueError("person_fields and account_fields are both null: nothing to write")
        return self

    def person_mapping(self) -> dict[str, str]:
        return dict(self.person_fields or {})

    def account_mapping(self) -> dict[str, str]:
        return dict(self.account_fields or {})

    def env_names(self) -> list[str]:
        names = [self.client_id_env, self.client_secret_env, self.private_key_env]
        return [n for n in names if n]


CrmDestination = HubSpotDestination | SalesforceDestination

__all__ = [
    "ACCOUNT_FIELDS",
    "USER_FIELDS",
    "CrmDestination",
    "HubSpotDestination",
    "SalesforceDestination",
    "SyncSchedule",
]
