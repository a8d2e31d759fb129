"""The hand-off as a run observer: each run and rescore of the engine tells it what it wrote,
inside the run's transaction, and it records the transitions (the outbox) and their deliveries
and moves the users' and accounts' state on (:func:`.transitions.record`)."""

from __future__ import annotations

from ..backends import Backend
from ..engine import Engine, WrittenRun
from ..model.handoff import Handoff
from ..model.load import LoadedModel
from .transitions import record


class TransitionRecorder:
    """Records the transitions of every run the engine tells it of (a `RunObserver`).

    Given the model, each transition also carries the lead's next step (its playbook) and who
    the people it names are (e-mail and role from the model's users source)."""

    keeps_state = True
    """It maintains pql_user_state and pql_account_state (what live rescoring reads)."""

    def __init__(self, handoff: Handoff, loaded: LoadedModel | None = None):
        self.handoff = handoff
        self.loaded = loaded

    def on_written(self, backend: Backend, run: WrittenRun) -> int:
        loaded = self.loaded
        return record(
            backend,
            self.handoff,
            run.users,
            run.accounts,
            run.as_of,
            run.model_version,
            run.written_at,
            partial=run.partial,
            accounts_affected=run.accounts_affected,
            users_affected=run.users_affected,
            merged=run.merged,
            playbooks=loaded.model.playbooks if loaded is not None else None,
            people=Engine(loaded, backend).bound.users if loaded is not None else None,
        )


__all__ = ["TransitionRecorder"]
