"""The PQL model (pql.yml): everything a RevOps person decides, as validated data.

Nothing here touches a database, a file or Ibis: :mod:`pqlkit.model.load` reads the YAML and
this module says what is allowed. Every field carries a docstring; the JSON Schema in
``schemas/`` is generated from these classes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .calibration import Calibration
from .conditions import Condition
from .handoff import Handoff
from .history import HistoryEntry
from .instrumentation import Instrumentation
from .playbooks import Play
from .signals import Duration, EventSignal, SignalId, TraitSignal
from .strict import Strict as _Strict

SCHEMA_VERSION = 1


# --- sources -------------------------------------------------------------------------------

CANONICAL_COLUMNS: dict[str, dict[str, bool]] = {
    # column -> required
    "events": {
        "message_id": False,
        "user_id": True,
        "anonymous_id": False,
        "account_id": False,
        "event": True,
        "timestamp": True,
        "properties": False,
    },
    "users": {
        "user_id": True,
        "email": False,
        "account_id": False,
        "created_at": False,
        "plan": False,
        "role": False,
    },
    "accounts": {
        "account_id": True,
        "domain": False,
        "name": False,
        "industry": False,
        "employees": False,
        "country": False,
        "tech_stack": False,
        "plan": False,
        "seats": False,
    },
    "outcomes": {
        "outcome_id": False,
        "account_id": False,
        "user_id": False,
        "kind": False,
        "created_at": True,
        "closed_at": False,
        "stage": True,
        "amount": False,
    },
    "identities": {
        "id": True,
        "user_id": True,
        "linked_at": True,
    },
}


TraitName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=63)]


class Source(_Strict):
    """Where one canonical table comes from: a table in the database or a file."""

    table: str | None = None
    """A table (or view) in the connected database, optionally schema-qualified."""
    path: str | None = None
    """A file, folder or glob instead of a table (Parquet, CSV or JSON lines; on Spark also a
    Delta table's folder), relative to the model file, or a URI Spark reads (s3a://...,
    hdfs://..., file:/...). Not on PostgreSQL."""
    format: Literal["parquet", "csv", "jsonl", "delta"] | None = None
    """The file format (default: from the file's extension; a folder needs it)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Canonical column -> your column, for columns whose names differ
    (e.g. {user_id: uid, event: event_name})."""
    traits: dict[TraitName, str] = Field(default_factory=dict)
    """Trait name -> your column, for columns whose names cannot follow `user.` or `account.`
    in a condition (spaces, punctuation): {lead_source: "Lead Source"} makes the column
    `user.lead_source`. Other columns keep their names as traits."""

    @model_validator(mode="after")
    def _table_or_path(self) -> Source:
        if (self.table is None) == (self.path is None):
            raise ValueError("give either table or path")
        taken = set(self.columns) & set(self.traits)
        if taken:
            raise ValueError(
                f"traits: {sorted(taken)[0]!r} is also in columns; give each name once"
            )
        return self


class Sources(_Strict):
    """The canonical tables, mapped to your own tables or files."""

    events: Source = Source(table="events")
    """Product and marketing events."""
    users: Source = Source(table="users")
    """One row per user: id, e-mail, account, plan, role and other traits."""
    accounts: Source | None = Source(table="accounts")
    """One row per account: domain, industry, employees, tech stack, plan, seats. `null` for a
    product without accounts (users then roll up to nothing and account.* fields are empty)."""
    outcomes: Source | None = None
    """Opportunities and deals (optional; used to mark sales touches and by learning)."""
    identities: Source | None = Source(table="pql_identities")
    """Which user an anonymous id (or an old user id) belongs to, and since when: `id`,
    `user_id`, `linked_at`. `pql serve` and `pql import` keep `pql_identities` up to date from
    identify, alias and events that carry both ids. As of each date, an event sent under an id
    linked before that date counts for its user, so what someone did before signing up counts
    toward their score. Used when the table exists; `null` turns it off."""


class Plans(_Strict):
    """How to tell a user's plan as of a point in time."""

    paid: list[str] = Field(default=["paid"], min_length=1)
    """Plan values that mean paying (at least one)."""
    upgrade_events: list[str] = []
    """Events that mark a self-serve upgrade. When given, a user counts as paid as of a date
    only if such an event happened before it, so a later upgrade does not leak into the past."""


# --- fit: ICP profiles and exclusions ---------------------------------------------------------

ProfileId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]


class Profile(_Strict):
    """An Ideal Customer Profile: who fits, over user and account attributes."""

    id: ProfileId
    """Unique id (lower_snake_case)."""
    description: str | None = None
    """Who this profile is, in words."""
    priority: int = 100
    """Lower wins when a user fits several profiles."""
    when: Condition
    """The fit rule over `user.*`, `account.*` fields and `email`."""


class Exclusion(_Strict):
    """A negative profile: users it matches are never PQLs, whatever their score."""

    id: ProfileId
    """Unique id (lower_snake_case)."""
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """Reason code recorded on excluded users (competitor, student, personal_email...)."""
    description: str | None = None
    """Why this group is excluded, in words."""
    when: Condition
    """The rule over `user.*`, `account.*` fields and `email`."""


class Icp(_Strict):
    """Ideal Customer Profiles and negative profiles."""

    profiles: list[Profile] = Field(min_length=1)
    """The profiles; a PQL must fit one."""
    exclusions: list[Exclusion] = []
    """Negative profiles, checked in order; the first that matches gives the reason."""


# --- thresholds and tiers --------------------------------------------------------------------


class Band(_Strict):
    """One tier by score."""

    tier: str
    """The tier's name (A, B, ...)."""
    min_score: float = Field(ge=0, le=100)
    """The lowest score in this tier."""


class BandTiers(_Strict):
    """Tiers from score bands, highest first."""

    kind: Literal["bands"]
    """Tiers by score bands: `bands`."""
    bands: list[Band] = Field(min_length=1)
    """Bands ordered by min_score, highest first; the last should start at 0."""

    @model_validator(mode="after")
    def _ordered(self) -> BandTiers:
        mins = [b.min_score for b in self.bands]
        if mins != sorted(mins, reverse=True) or len(set(mins)) != len(mins):
            raise ValueError("bands must be ordered by min_score, highest first, without ties")
        if mins[-1] != 0:
            raise ValueError("the last band must start at min_score 0 so every score has a tier")
        return self


class GridTiers(_Strict):
    """Tiers from a fit x usage grid."""

    kind: Literal["grid"]
    """Tiers by a fit x usage grid: `grid`."""
    fit_cuts: list[float] = Field(min_length=1)
    """Fit score cut points, ascending: [40, 70] makes fit levels low (<40), mid, high (>=70)."""
    usage_cuts: list[float] = Field(min_length=1)
    """Usage score cut points, ascending."""
    matrix: list[list[str]]
    """matrix[fit level][usage level], fit level 0 = lowest; one more row than fit_cuts and one
    more column than usage_cuts."""

    @model_validator(mode="after")
    def _shape(self) -> GridTiers:
        if self.fit_cuts != sorted(self.fit_cuts) or self.usage_cuts != sorted(self.usage_cuts):
            raise ValueError("fit_cuts and usage_cuts must be ascending")
        rows, cols = len(self.fit_cuts) + 1, len(self.usage_cuts) + 1
        if len(self.matrix) != rows or any(len(r) != cols for r in self.matrix):
            raise ValueError(f"matrix must have {rows} rows of {cols} tiers each")
        return self


Tiers = Annotated[BandTiers | GridTiers, Field(discriminator="kind")]


class Thresholds(_Strict):
    """When a user is a PQL (and an MQL, for comparison)."""

    pql_score: float = Field(default=60, ge=0, le=100)
    """Minimum score (0-100) for a PQL, besides fitting, not excluded and activated."""
    mql_score: float = Field(default=50, ge=0, le=100)
    """Minimum MQL score for the MQL flag."""


# --- segments, routing, accounts -------------------------------------------------------------


class Segment(_Strict):
    """A buyer-spectrum segment; the first whose rule holds is the user's."""

    id: ProfileId
    """Unique id (lower_snake_case)."""
    label: str | None = None
    """Readable name."""
    when: Condition | None = None
    """The rule; leave it out on the last segment to catch everyone else."""


class Route(_Strict):
    """A routing rule; the first that holds picks the motion."""

    motion: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """The motion: self_serve, sales_assist, enterprise, or your own."""
    when: Condition
    """The rule, over any field (decision.segment, decision.tier, account.employees...)."""


class Routing(_Strict):
    """How users are routed to a go-to-market motion."""

    rules: list[Route] = []
    """Checked in order."""
    default: str = "self_serve"
    """The motion when no rule holds."""


class AccountRollup(_Strict):
    """How users roll up to product-qualified accounts."""

    score: Literal["max", "sum", "mean"] = "max"
    """Account score from its users' scores: max (best user), sum (capped at 100) or mean."""
    min_pql_users: int = Field(default=1, ge=1)
    """PQL users an account needs to be product-qualified."""
    min_score: float = Field(default=0, ge=0, le=100)
    """Account score it also needs to be product-qualified."""
    active_within: Duration = "14d"
    """A user is active when their last event is within this long before as_of; the share of
    seats active is active users / seats."""
    min_active_seat_share: float = Field(default=0, ge=0, le=1)
    """Share of seats active it also needs to be product-qualified (0 = not required)."""


# --- the model -----------------------------------------------------------------------------


class Model(_Strict):
    """A PQL model: who fits, what counts, when someone is a PQL, and where they go."""

    version: Literal[1] = 1
    """Model file format version."""
    name: str = "pql-model"
    """A name for this model."""
    challenger: str | None = None
    """A challenger model file (relative to this one), scored beside this model on every full
    run into pql_challenger_scores; it hands nothing off. `pql compare` shows both."""
    history: list[HistoryEntry] = []
    """The promotions that made this file the live model, newest first (`pql promote` adds
    one when the section exists; `pql history` lists them all)."""
    sources: Sources = Sources()
    """Where the canonical tables come from."""
    plans: Plans = Plans()
    """How plans are told apart."""
    icp: Icp
    """Ideal Customer Profiles and exclusions."""
    fit_signals: list[TraitSignal] = []
    """Points for fit over attributes; they make the fit score."""
    usage_signals: list[EventSignal] = Field(min_length=1)
    """Points for product behaviour; they make the usage score."""
    mql_signals: list[EventSignal] = []
    """Points for marketing engagement; they make the MQL score, for comparison."""
    activation: Condition
    """The activation point (Product Activated Lead): a rule over signals."""
    thresholds: Thresholds = Thresholds()
    """Score thresholds."""
    tiers: Tiers = BandTiers(
        kind="bands",
        bands=[
            Band(tier="A", min_score=80),
            Band(tier="B", min_score=60),
            Band(tier="C", min_score=40),
            Band(tier="D", min_score=0),
        ],
    )
    """Tiers by score band (default A >= 80, B >= 60, C >= 40, D) or by a fit x usage grid."""
    calibration: Calibration | None = None
    """The likelihood of converting that the points mean, with grades (written by `pql learn`);
    without it users rank by their uncapped points."""
    segments: list[Segment] | None = None
    """Buyer-spectrum segments in order (default: converted_without_assistance,
    asked_for_sales, maxed_out_free, free_user; see docs/model.md)."""
    routing: Routing = Routing()
    """Motion routing."""
    accounts: AccountRollup = AccountRollup()
    """Account rollup."""
    handoff: Handoff | None = None
    """Where transitions (became a PQL, tier changed...) are delivered: signed webhooks, Slack."""
    instrumentation: Instrumentation | None = None
    """How the events the model reads are watched for a drought (`pql serve --model`)."""
    playbooks: list[Play] = []
    """The next step for each segment x motion (x ICP profile): a short action, talking points
    and links, shown in the inbox, on the lead page, in Slack and in webhooks (`next_step`)."""

    @property
    def all_signals(self) -> list[TraitSignal | EventSignal]:
        return [*self.fit_signals, *self.usage_signals, *self.mql_signals]


__all__ = [
    "CANONICAL_COLUMNS",
    "AccountRollup",
    "Band",
    "BandTiers",
    "Duration",
    "Exclusion",
    "GridTiers",
    "Icp",
    "Model",
    "Plans",
    "Profile",
    "Route",
    "Routing",
    "Segment",
    "SignalId",
    "Source",
    "Sources",
    "Thresholds",
]
