"""Instrumentation health: the tracking plan a model implies (:mod:`.plan`), the collector's
count of the messages that break it (:mod:`.check`), and each watched event's volume against
its own baseline with the alert when one stops arriving (:mod:`.volume`).

An app service: it reads the model and the events table; the destinations an alert goes to
are composed by the use case (``pqlkit.usecases.tracking``), not imported here."""
