"""What the product's in-app prompt API answers: whether to show a prompt to a user now, from
the user's live state and the prompts shown before (both kept by
:mod:`pqlkit.backends.serving`), by the model's `handoff.prompts` rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..backends.serving import ShownLog, StateReader, stamp
from ..model.handoff import Prompt, Prompts
from ..model.signals import duration_seconds


@dataclass(frozen=True)
class Answer:
    show: bool
    prompt: Prompt | None = None
    state: dict[str, Any] | None = None

    def to_dict(self, user_id: str) -> dict[str, Any]:
        if not self.show or self.prompt is None or self.state is None:
            # the same answer for an unknown user and a user with nothing to show: the API
            # does not tell who exists
            return {"user_id": user_id, "show": False, "prompt": None}
        s = self.state
        return {
            "user_id": user_id,
            "show": True,
            "prompt": {"id": self.prompt.id, "data": dict(self.prompt.data)},
            "user": {
                "score": s["score"],
                "tier": s["tier"],
                "segment": s["segment"],
                "motion": s["motion"],
                "icp_profile": s["icp_profile"],
                "is_pql": bool(s["is_pql"]),
            },
            "as_of": s["as_of"],
        }


def matches(prompt: Prompt, state: dict[str, Any]) -> bool:
    w = prompt.when
    if w.pql is not None and bool(state["is_pql"]) != w.pql:
        return False
    return w.admits(state)


class PromptDesk:
    """The HTTP process's side: answers whether to show a prompt now, and records it shown."""

    def __init__(self, folder: str | Path, prompts: Prompts, reader: StateReader | None = None):
        self.folder = Path(folder)
        self.prompts = prompts
        self.cooldown = timedelta(seconds=duration_seconds(prompts.cooldown))
        self.window = timedelta(seconds=duration_seconds(prompts.cap_window))
        self.reader = reader or StateReader(folder)
        self.shown = ShownLog(folder)

    def answer(self, user_id: str, now: datetime) -> Answer:
        state = self.reader.get(user_id)
        if state is None:
            return Answer(False)
        quiet = state.get("quiet_until")
        if quiet and datetime.fromisoformat(str(quiet)) > now:  # a rep marked them done or out
            return Answer(False)
        prompt = next((p for p in self.prompts.rules if matches(p, state)), None)
        if prompt is None:
            return Answer(False)
        since = now - self.window
        times = self.shown.since(user_id, min(since, now - self.cooldown))
        if times and times[0] > stamp(now - self.cooldown):
            return Answer(False)
        if sum(1 for t in times if t >= stamp(since)) >= self.prompts.cap:
            return Answer(False)
        self.shown.add(user_id, prompt.id, now)
        return Answer(True, prompt, state)

    def close(self) -> None:
        self.shown.close()
        self.reader.close()


__all__ = ["Answer", "PromptDesk", "matches"]
