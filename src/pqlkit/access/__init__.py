"""Who may sign in to the web app, with which role, and their sessions: rows in the database
(via the backend's intents), passwords hashed with Argon2id. Used by `pql users` and the web app."""
