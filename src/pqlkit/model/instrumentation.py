"""The model's `instrumentation:` section: how the events the model depends on are watched
(volume against each event's own recent baseline) and where a drought is reported."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from .signals import Duration, duration_seconds
from .strict import Strict as _Strict


class Instrumentation(_Strict):
    """Watch the events the model reads: each one's count over the last `window` is compared
    with the same span one `season` back, `periods` times (by default the same hour on each
    of the last 7 days); an event that falls by `drop` or more of that baseline is reported."""

    window: Duration = "1h"
    """The span whose count is judged (the last hour by default)."""
    season: Duration = "1d"
    """How far apart the baseline's spans are: 1d compares with the same hour on earlier days."""
    periods: int = Field(default=7, ge=1, le=60)
    """How many earlier spans make the baseline (their mean)."""
    drop: float = Field(default=0.5, gt=0, le=1)
    """The fall that raises an alert, as a share of the baseline: 0.5 alerts at half or less,
    1 only when the event stopped."""
    min_expected: float = Field(default=10, gt=0)
    """An event whose baseline is below this many events a window is not judged (too rare
    to tell a drought from chance)."""
    every: Duration = "1m"
    """How often the counts are checked (by `pql serve --model`'s flusher)."""
    notify: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = []
    """Destinations of `handoff.destinations` (webhook, Slack) told when an event falls and
    when it recovers."""

    @model_validator(mode="after")
    def _window_within_season(self) -> Instrumentation:
        if duration_seconds(self.window) > duration_seconds(self.season):
            raise ValueError(
                f"window {self.window} is longer than season {self.season}: the baseline's "
                "spans would overlap; give a window no longer than the season"
            )
        return self


__all__ = ["Instrumentation"]
