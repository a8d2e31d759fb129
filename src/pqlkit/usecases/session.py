"""The session every use case takes: one open connection and, when the command has one, the
model and an engine over both, wired with the engine's observers (the hand-off's transition
recorder when the model has a `handoff:` section).

A URL is opened once, at the edge: per command by the CLI, per request by the web app, once by
a long-running process (sqlite-utils passes a `Database` the same way); docs/architecture.md
names the use cases that still take a URL.

    with Session.open(url, "pql.yml") as s:
        scoring.score(s, as_of="2026-11-01")
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import connect
from ..errors import PqlkitError
from ..model.load import LoadedModel, load_model

if TYPE_CHECKING:
    from ..backends import Backend
    from ..engine import Engine, RunObserver


def observers_for(loaded: LoadedModel, challenger: LoadedModel | None = None) -> list[RunObserver]:
    """What listens to the runs of this model: the hand-off records its transitions; a
    challenger (``challenger``, else the model's ``challenger:`` file) is scored beside each
    full run, handing nothing off."""
    from ..engine.challenger import ChallengerScorer, challenger_of

    observers: list[RunObserver] = []
    handoff = loaded.model.handoff
    if handoff is not None:
        from ..handoff.recorder import TransitionRecorder

        observers.append(TransitionRecorder(handoff, loaded))
    challenger = challenger or challenger_of(loaded)
    if challenger is not None:
        observers.append(ChallengerScorer(challenger))
    return observers


class Session:
    """An open backend, the model (optional) and the engine over both."""

    def __init__(
        self,
        backend: Backend,
        loaded: LoadedModel | None = None,
        *,
        templates: dict[str, str] | None = None,
        challenger: LoadedModel | None = None,
    ):
        self.backend = backend
        self._loaded = loaded
        self.challenger = challenger
        """Scored beside every full run instead of the model's own ``challenger:`` file."""
        self.templates = templates
        """Compiled SQL shared by the engines of a long-lived caller (the web app)."""

    @classmethod
    def open(
        cls,
        url: str | None = None,
        model: str | Path | LoadedModel | None = None,
        *,
        templates: dict[str, str] | None = None,
        challenger: str | Path | None = None,
    ) -> Session:
        """Load the model (when given; before connecting, so a bad model opens nothing) and
        the ``challenger`` model file (scored beside every full run), and connect to ``url``."""
        loaded = model if isinstance(model, LoadedModel) or model is None else load_model(model)
        beside = load_model(challenger) if challenger is not None else None
        return cls(connect(url), loaded, templates=templates, challenger=beside)

    @classmethod
    def of(cls, engine: Engine) -> Session:
        """A session over an engine someone already holds (its backend, model and engine)."""
        session = cls(engine.backend, engine.loaded, templates=engine.query_cache)
        session.__dict__["engine"] = engine  # the cached_property's slot: this very engine
        return session

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            raise PqlkitError("this needs a model: pass --model pql.yml (or PQL_MODEL)")
        return self._loaded

    @property
    def model(self) -> Any:
        return self.loaded.model

    @cached_property
    def engine(self) -> Engine:
        from ..engine import Engine

        return Engine(
            self.loaded,
            self.backend,
            templates=self.templates,
            observers=observers_for(self.loaded, self.challenger),
        )

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_engine(model_path: str | Path, url: str | None = None) -> Engine:
    """An engine for the model at ``model_path`` over ``url``, wired as the CLI wires it (the
    hand-off records the transitions of every run). Its connection closes with ``close()``."""
    return Session.open(url, model_path).engine


__all__ = ["Session", "observers_for", "open_engine"]
