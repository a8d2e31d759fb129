"""Playbooks: what a rep does next with a lead, by where it stands (segment x motion, and
optionally its ICP profile). Pocus's playbooks are the idea: a surfaced lead comes with the
play to run, so the inbox, Slack and the webhook say "offer the team plan; mention the quota
they hit" instead of only "maxed_out_free / sales_assist".

A play matches a lead whose segment and motion are the play's (and profile, when the play names
one); a play naming the lead's profile wins over one that names none. Names are checked against
the model (:func:`pqlkit.model.references.playbook_issues`), so a play can never wait for a segment or motion the model
does not produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import Field, field_validator

from .strict import Strict

PlayName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]


class Link(Strict):
    """A link a rep may need for the play (a deck, a pricing page, a calendar)."""

    label: str = Field(min_length=1, max_length=80)
    """What the link is, in a few words."""
    url: str = Field(max_length=2000)
    """Where it goes (http or https)."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class Play(Strict):
    """The next step for the leads of one segment x motion (x ICP profile)."""

    id: PlayName
    """Unique id (lower_snake_case): the machine field (`next_step.id`) CRMs and reports key on."""
    segment: PlayName
    """The segment it is for (one of the model's segments)."""
    motion: PlayName
    """The motion it is for (the routing's default or one of its rules' motions)."""
    profile: PlayName | None = None
    """Only leads of this ICP profile (a play naming the lead's profile wins over one without)."""
    action: str = Field(min_length=1, max_length=120)
    """The next step in one short line: what the inbox row shows (e.g. "Offer the team plan")."""
    talking_points: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default=[], max_length=10
    )
    """What to say, one point each (shown on the lead page, in Slack and the webhook)."""
    links: list[Link] = Field(default=[], max_length=10)
    """Links for the play."""

    def next_step(self) -> dict[str, Any]:
        """The play as the hand-off and the inbox carry it."""
        return {
            "id": self.id,
            "action": self.action,
            "talking_points": list(self.talking_points),
            "links": [{"label": link.label, "url": link.url} for link in self.links],
        }


def find_play(plays: list[Play] | None, decided: Mapping[str, Any]) -> Play | None:
    """The play for a lead's segment, motion and ICP profile (``icp_profile``), or None."""
    general = None
    for play in plays or ():
        if play.segment != decided.get("segment") or play.motion != decided.get("motion"):
            continue
        if play.profile is None:
            general = general or play
        elif play.profile == decided.get("icp_profile"):
            return play
    return general


def next_step(plays: list[Play] | None, decided: Mapping[str, Any]) -> dict[str, Any] | None:
    """The lead's next step (see :meth:`Play.next_step`), None when no play matches."""
    play = find_play(plays, decided)
    return play.next_step() if play is not None else None


__all__ = ["Link", "Play", "find_play", "next_step"]
