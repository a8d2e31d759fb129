"""The calibration section: the likelihood a score means, and its grades.

``pql learn`` fits it on the point-in-time backtest and writes it into the proposal; a model
without one ranks by its points alone. The likelihood is a logistic curve (Platt scaling) over
the uncapped point total (fit plus usage, before the 0-100 clip): strictly increasing, so it
orders users exactly as their points do and never ties two users whose points differ.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from .signals import Duration
from .strict import Strict


class Grade(Strict):
    """One grade band: users whose likelihood is at least ``min_likelihood`` (and below the
    band above) get ``grade``."""

    grade: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_+-]{0,15}$")
    """The grade's name, as reps see it (A, B, C, D, E)."""
    min_likelihood: float = Field(ge=0, le=1)
    """The lowest likelihood (0-1) in the band."""


DEFAULT_GRADES = [
    Grade(grade="A", min_likelihood=0.5),
    Grade(grade="B", min_likelihood=0.25),
    Grade(grade="C", min_likelihood=0.1),
    Grade(grade="D", min_likelihood=0.03),
    Grade(grade="E", min_likelihood=0),
]


class Calibration(Strict):
    """The likelihood of converting within ``horizon``: 1 / (1 + exp(-(intercept + slope *
    points))), where points is the uncapped fit plus usage total."""

    outcome: str = Field(default="any", pattern=r"^[a-z][a-z0-9_]*$")
    """The outcome it was fitted on (the `--outcome` of `pql learn`: any, opportunity, won...)."""
    horizon: Duration = "90d"
    """The window after a date within which a conversion counts."""
    intercept: float = Field(ge=-100, le=100)
    """The curve's intercept (log-odds at 0 points)."""
    slope: float = Field(gt=0, le=10)
    """Log-odds per point; positive, so more points is always more likely."""
    fitted_on: str | None = None
    """What it was fitted on, in words (dates, rows, conversions, Brier score); for people."""
    grades: list[Grade] = Field(default_factory=lambda: list(DEFAULT_GRADES), min_length=1)
    """Grade bands from the highest likelihood down; the last band catches everyone else.
    Default A >= 50%, B >= 25%, C >= 10%, D >= 3%, E."""

    @model_validator(mode="after")
    def _descending(self) -> Calibration:
        cuts = [g.min_likelihood for g in self.grades]
        if cuts != sorted(cuts, reverse=True) or len(set(cuts)) != len(cuts):
            raise ValueError("grades must go from the highest min_likelihood down, each lower")
        names = [g.grade for g in self.grades]
        if len(set(names)) != len(names):
            raise ValueError("each grade needs a name of its own")
        return self


__all__ = ["DEFAULT_GRADES", "Calibration", "Grade"]
