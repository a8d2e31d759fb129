"""The hand-off: transitions recorded with each run (a transactional outbox), routed to the
model's destinations, and delivered exactly once per transition id, with retries."""
