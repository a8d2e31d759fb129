"""Serve a fake CRM in a process of its own (for bench/bench_crm.py, or to try pqlkit by hand):

python -m tests.fakes hubspot --port 8111 --calls-per-10s 100
python -m tests.fakes salesforce --port 8112
"""

from __future__ import annotations

import argparse

import uvicorn

from .hubspot import FakeHubSpot
from .salesforce import FakeSalesforce


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["hubspot", "salesforce"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--calls-per-10s", type=int, default=100)
    p.add_argument("--stall", type=float, default=0.0, help="seconds each upsert takes")
    p.add_argument("--fields", default="", help="Salesforce: Object:Field,Field:ExternalId;...")
    a = p.parse_args()
    if a.kind == "hubspot":
        hub = FakeHubSpot(calls_per_10s=a.calls_per_10s)
        hub.stall = a.stall
        app = hub.app
    else:
        fake = FakeSalesforce()
        fake.stall = a.stall
        fake.base_url = f"http://127.0.0.1:{a.port}"
        for spec in filter(None, a.fields.split(";")):
            obj, fields, ext = spec.split(":")
            fake.add_fields(obj, fields.split(","), ext)
        app = fake.app
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="error", access_log=False)


if __name__ == "__main__":
    main()
