"""Benchmark: `pql sync crm` writing 100k changed records to each CRM, against the floor the
CRM's documented limits impose and against a bare sender of the same batches.

    python bench/bench_crm.py                          # 100k records, HubSpot at 100 calls/10 s
    python bench/bench_crm.py --records 20000 --calls-per-10s 190

Data: bench_score's generator (N users, N/10 accounts, 1M events), scored once; the model syncs
everyone's contact (HubSpot, 100 a call) and Lead (Salesforce, 200 a call). Each fake CRM runs
in a process of its own (tests/fakes), as the tests use them.

- HubSpot: the floor is (records / 100) calls at the burst limit: records / 100 / (limit / 10)
  seconds. Reported: pqlkit's time, the floor, floor / time (target >= 0.9).
- Salesforce has no per-second limit (a daily allowance and concurrent long requests): the
  baseline is a bare httpx loop posting the same 200-record batches to the same fake with no
  diffing, ledger or audit; reported: the ratio of the two (pqlkit's overhead).
A second sync right after (nothing changed) shows what a diff costs when there is nothing to send.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from bench_score import AS_OF, DATA, MODEL, generate  # noqa: E402

SF_FIELDS = "Lead:Pqlkit_Id__c,PQL__c,PQL_Score__c,PQL_Tier__c,PQL_Segment__c,PQL_Motion__c,PQL_Profile__c,PQL_Reasons__c,PQL_Became_PQL_At__c,PQL_Model_Version__c,PQL_As_Of__c:Pqlkit_Id__c"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(kind: str, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes", kind, "--port", str(port), *args], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/", timeout=0.5)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"the {kind} fake did not start")


def prepare(records: int) -> Path:
    from pqlkit.backends import connect
    from pqlkit.engine import Engine
    from pqlkit.model.load import load_model

    DATA.mkdir(exist_ok=True)
    db = DATA / f"crm_{records}.duckdb"
    if db.exists():
        return db
    started = time.perf_counter()
    generate(db, 1_000_000, records, max(records // 10, 1))
    backend = connect(str(db))
    Engine(load_model(MODEL), backend).run(AS_OF)
    backend.close()
    print(f"prepared {db.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return db


def model(path: Path, hub: str, sf: str) -> Path:
    text = (
        MODEL.read_text()
        + f"""
handoff:
  destinations:
    - {{id: hubspot, kind: hubspot, token_env: HS_TOKEN, base_url: "{hub}", sync: everyone, companies: null, calls_per_10s: {{calls}}}}
    - id: salesforce
      kind: salesforce
      login_url: "{sf}"
      client_id_env: SF_ID
      client_secret_env: SF_SECRET
      sync: everyone
      account_fields: null
      person_fields: {{Pqlkit_Id__c: user_id, Email: email, LastName: last_name, Company: company, PQL__c: is_pql, PQL_Score__c: score, PQL_Tier__c: tier, PQL_Segment__c: segment, PQL_Motion__c: motion, PQL_Profile__c: profile, PQL_Reasons__c: reasons, PQL_Became_PQL_At__c: became_pql_at, PQL_Model_Version__c: model_version, PQL_As_Of__c: as_of}}
"""
    )
    path.write_text(text)
    return path


def bare_salesforce(url: str, db: Path, model_path: Path) -> float:
    """The same Lead batches, built by pqlkit's record code once, posted by a bare loop."""
    from pqlkit.backends import connect
    from pqlkit.crm import records
    from pqlkit.crm.state import tables
    from pqlkit.engine import Engine
    from pqlkit.model.crm import USER_FIELDS
    from pqlkit.model.load import load_model

    loaded = load_model(model_path)
    dest = next(d for d in loaded.model.handoff.destinations if d.id == "salesforce")
    backend = connect(str(db))
    users, _ = tables(Engine(loaded, backend))
    rows = users.to_pyarrow().to_pylist()
    backend.close()
    recs, _ = records.build(
        rows, object="Lead", key="user_id", crm_key="user_id", mapping=dest.person_mapping(),
        kinds=USER_FIELDS, flavour="salesforce",
    )  # fmt: skip
    with httpx.Client() as c:
        token = c.post(url + "/services/oauth2/token",
                       data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"}).json()["access_token"]  # fmt: skip
        started = time.perf_counter()
        for batch in records.batches(recs, 200):
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": "Lead"}, **r.fields} for r in batch],
            }
            r = c.patch(url + "/services/data/v62.0/composite/sobjects/Lead/Pqlkit_Id__c", json=body,
                        headers={"authorization": f"Bearer {token}"})  # fmt: skip
            r.raise_for_status()
        return time.perf_counter() - started


def sync(model_path: Path, db: Path, dest: str, env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pqlkit.cli", "sync", "crm", "-m", str(model_path), "--url", str(db),
         "--destination", dest, "--json"],
        capture_output=True, text=True, env={**os.environ, **env},
    )  # fmt: skip
    took = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return took, json.loads(out.stdout)[0]


def hubspot_rows(a, m: Path, db: Path, env: dict[str, str]) -> list[tuple]:
    wall, rep = sync(m, db, "hubspot", env)
    took, sent, calls = rep["seconds"], rep["objects"][0]["sent"], rep["calls"]
    # a sliding window of B calls per W seconds lets the first B go at once: N calls take at
    # least (N - 1) // B * W seconds (the records / batch / rate, less one window)
    floor = (calls - 1) // a.calls_per_10s * 10
    rows = [("HubSpot contacts", sent, took, wall, calls, floor, floor / took if floor else None)]
    wall2, rep2 = sync(m, db, "hubspot", env)
    n, t, c = rep2["objects"][0]["sent"], rep2["seconds"], rep2["calls"]
    rows.append(("HubSpot, nothing changed", n, t, wall2, c, None, None))
    return rows


def salesforce_rows(a, m: Path, db: Path, env: dict[str, str], hub_url: str) -> list[tuple]:
    times, walls, bare = [], [], []
    sent = calls = 0
    for _ in range(a.repeat):
        _drop(db, "pql_crm_ledger")
        wall, rep = sync(m, db, "salesforce", env)
        times.append(rep["seconds"])
        walls.append(wall)
        sent, calls = rep["objects"][0]["sent"], rep["calls"]
    sf, url = serve("salesforce", "--fields", SF_FIELDS, "--stall", str(a.latency))
    try:
        m2 = model(work_dir() / "bare.yml", hub_url, url)
        m2.write_text(m2.read_text().replace("{calls}", str(a.calls_per_10s)))
        bare = [bare_salesforce(url, db, m2) for _ in range(a.repeat)]
    finally:
        sf.terminate()
    t_sf, t_bare = statistics.median(times), statistics.median(bare)
    what = f"Salesforce Leads, {a.latency * 1000:.0f} ms a call (vs bare)"
    return [(what, sent, t_sf, statistics.median(walls), calls, t_bare, t_bare / t_sf)]


def work_dir() -> Path:
    work = DATA / "crm_bench"
    work.mkdir(exist_ok=True)
    return work


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--calls-per-10s", type=int, default=100)
    p.add_argument("--repeat", type=int, default=1, help="Salesforce runs (each on a fresh fake)")
    p.add_argument(
        "--latency", type=float, default=0.0, help="seconds each Salesforce upsert takes"
    )
    p.add_argument("--only", choices=["hubspot", "salesforce"], default=None)
    a = p.parse_args()
    db = prepare(a.records)
    env = {"HS_TOKEN": "pat-test", "SF_ID": "cid", "SF_SECRET": "csecret"}
    for table in ("pql_crm_ledger", "pql_crm_audit", "pql_crm_syncs"):
        _drop(db, table)
    hub, hub_url = serve("hubspot", "--calls-per-10s", str(a.calls_per_10s))
    sf, sf_url = serve("salesforce", "--fields", SF_FIELDS, "--stall", str(a.latency))
    rows = []
    try:
        m = model(work_dir() / "pql.yml", hub_url, sf_url)
        m.write_text(m.read_text().replace("{calls}", str(a.calls_per_10s)))
        if a.only in (None, "hubspot"):
            rows += hubspot_rows(a, m, db, env)
        if a.only in (None, "salesforce"):
            rows += salesforce_rows(a, m, db, env, hub_url)
    finally:
        hub.terminate()
        sf.terminate()
    head = f"{'what':44} {'records':>8} {'sync s':>7} {'cmd s':>6} {'calls':>6}"
    print(f"\n{head} {'floor/base s':>12} {'ratio':>6}")
    for what, n, t, w, c, floor, ratio in rows:
        f = f"{floor:12.1f}" if floor is not None else f"{'':>12}"
        r = f"{ratio:6.2f}" if ratio is not None else f"{'':>6}"
        print(f"{what:44} {n:8,} {t:7.1f} {w:6.1f} {c:6,} {f} {r}")
    print("sync s: the sync itself (report.seconds); cmd s: the whole `pql sync crm` process")


def _drop(db: Path, table: str) -> None:
    from pqlkit.backends import connect

    b = connect(str(db))
    try:
        if b.has_table(table):
            b.run_sql(f"DROP TABLE {table}")
    finally:
        b.close()


if __name__ == "__main__":
    main()
