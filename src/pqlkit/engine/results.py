"""What the engine returns: a run's counts, and one user's explanation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..scoring.decide import SignalResult


@dataclass
class RunResult:
    """What a scoring run wrote."""

    as_of: datetime
    model_version: str
    users: int
    pqls: int
    accounts: int
    pqas: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    transitions: int | None = None
    """Transitions recorded for the hand-off (None: the model has no `handoff:`)."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "as_of": self.as_of.isoformat()}


@dataclass
class Explanation:
    """Why one user scored what they scored."""

    user_id: str
    as_of: datetime
    model_version: str
    outputs: dict[str, Any]
    signals: list[SignalResult]
    attributes: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "as_of": self.as_of.isoformat(),
            "model_version": self.model_version,
            **self.outputs,
            "signals": [
                {
                    "id": s.id,
                    "group": s.group,
                    "value": s.value,
                    "fired": bool(s.fired),
                    "points": s.points,
                    "reason": s.text,
                }
                for s in self.signals
            ],
        }
