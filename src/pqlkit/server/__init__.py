"""The collector's HTTP server (the `server` extra)."""
