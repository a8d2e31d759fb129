"""Champion and challenger on the demo's own database (`pql demo`): a challenger scored beside
the live model hands nothing off; `pql compare` shows both on the outcomes; `pql backtest
--challenger` replays both on the same dates; `pql promote` records the model history."""

from __future__ import annotations

import html
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from pqlkit.backends import connect
from pqlkit.cli import cli
from pqlkit.learn.metrics import auc
from pqlkit.model.load import load_model

DATES = ("2026-10-20", "2026-10-27", "2026-11-03")


def pql(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """What `pql demo` makes (a database, its model with a hand-off), made once."""
    folder = tmp_path_factory.mktemp("demo")
    pql("demo", "--dir", str(folder), "--accounts", "150", "--users", "600", "--days", "90")
    return folder


@pytest.fixture
def demo(demo_dir, tmp_path) -> Path:
    """A copy of the demo's folder for one test, with a challenger beside the model: the same
    model with a lower PQL threshold and twice the points for a company of the right size."""
    for name in ("demo.duckdb", "pql.yml"):
        shutil.copy(demo_dir / name, tmp_path / name)
    text = (tmp_path / "pql.yml").read_text(encoding="utf-8")
    assert "pql_score: 60" in text
    size = 'label: "Company of 50-999 employees", points: 15,'
    assert size in text
    (tmp_path / "challenger.yml").write_text(
        text.replace("name: starter", "name: challenger")
        .replace("pql_score: 60", "pql_score: 45")
        .replace(size, size.replace("15", "30")),
        encoding="utf-8",
    )
    return tmp_path


def opts(folder: Path, model: str = "pql.yml") -> list[str]:
    return ["-m", str(folder / model), "--url", str(folder / "demo.duckdb")]


def handed_off(db: Path) -> dict[str, list[tuple]]:
    """Everything the hand-off keeps (transitions, deliveries, the users' state), without the
    times they were written at."""
    b = connect(str(db))
    try:
        out = {}
        for name, columns in (
            ("pql_outbox", ["id", "kind", "entity_id", "new_value", "as_of", "model_version"]),
            ("pql_deliveries", ["transition_id", "destination", "status"]),
            ("pql_user_state", ["user_id", "as_of", "model_version", "score", "is_pql"]),
        ):
            out[name] = sorted(b.values(b.table(name).select(columns)), key=repr)
        return out
    finally:
        b.close()


def challenger_rows(db: Path) -> list[dict]:
    b = connect(str(db))
    try:
        t = b.table("pql_challenger_scores")
        agg = t.group_by(["as_of", "model_version", "champion_version"]).aggregate(
            users=t.count(), pqls=t.is_pql.cast("int64").sum()
        )
        return b.rows(agg.order_by("as_of"))
    finally:
        b.close()


def test_a_challenger_scored_beside_the_live_model_hands_nothing_off(demo, tmp_path_factory):
    """Long because it scores three dates twice, with and without the challenger, to compare
    what each left (about 45 s, and 30 s for `pql demo` once for the module)."""
    alone = tmp_path_factory.mktemp("alone")
    shutil.copy(demo / "demo.duckdb", alone / "demo.duckdb")
    shutil.copy(demo / "pql.yml", alone / "pql.yml")
    for day in DATES:
        out = pql(
            "score",
            *opts(demo),
            "--as-of",
            day,
            "--challenger",
            str(demo / "challenger.yml"),
            "--json",
            "--limit",
            "0",
        )
        beside = json.loads(out)
        pql("score", *opts(alone), "--as-of", day, "--limit", "0")
        assert beside["challenger"]["pqls"] > beside["pqls"]  # a lower threshold: more PQLs
    # the same transitions, deliveries and state as the live model scored alone
    assert handed_off(demo / "demo.duckdb") == handed_off(alone / "demo.duckdb")
    assert handed_off(demo / "demo.duckdb")["pql_outbox"]  # the live model did hand off
    rows = challenger_rows(demo / "demo.duckdb")
    assert [str(r["as_of"].date()) for r in rows] == list(DATES)
    assert {r["champion_version"] for r in rows} == {beside["model_version"]}
    assert rows[-1]["pqls"] == beside["challenger"]["pqls"]


def test_the_models_challenger_file_is_scored_on_every_run(demo):
    model = demo / "pql.yml"
    model.write_text(
        model.read_text(encoding="utf-8").replace(
            "name: starter\n", "name: starter\nchallenger: challenger.yml\n"
        ),
        encoding="utf-8",
    )
    out = pql("score", *opts(demo), "--as-of", DATES[0], "--limit", "0")
    assert "Challenger" in out and "handed nothing off" in out
    assert len(challenger_rows(demo / "demo.duckdb")) == 1


def test_the_live_full_pass_scores_the_challenger_and_a_rescore_does_not(demo):
    """`pql serve --model`'s flusher runs the full pass (and live rescores) through Live.tick."""
    from pqlkit.handoff.live import Live

    model = demo / "pql.yml"
    model.write_text(
        model.read_text(encoding="utf-8").replace(
            "name: starter\n", "name: starter\nchallenger: challenger.yml\n"
        ),
        encoding="utf-8",
    )
    live = Live(model, env={}, serving=demo / "serving.sqlite")
    backend = connect(str(demo / "demo.duckdb"))
    try:
        live.tick(backend)  # the first tick is a full pass
        assert live.stats.full_runs == 1
        t = backend.table("pql_challenger_scores")
        runs = backend.rows(t.group_by(["as_of", "champion_version"]).aggregate(n=t.count()))
        assert [(r["champion_version"], r["n"]) for r in runs] == [(load_model(model).version, 600)]
        no_calls = SimpleNamespace(link_pairs=list, traits=[])  # no identify, alias or group
        live.note(["u_000001"], no_calls)  # a live rescore of one user: the challenger waits
        live.tick(backend)
        assert live.stats.rescores == 1
        assert backend.count("pql_challenger_scores") == 600
    finally:
        live.finish(backend)
        backend.close()


def test_a_missing_challenger_file_is_named(demo):
    model = demo / "pql.yml"
    model.write_text(
        model.read_text(encoding="utf-8").replace(
            "name: starter\n", "name: starter\nchallenger: nowhere.yml\n"
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["score", *opts(demo), "--limit", "0"])
    assert result.exit_code == 1
    assert "challenger: 'nowhere.yml' is not a file" in result.output


def snapshots(folder: Path, model: str) -> dict[str, np.ndarray]:
    """What learning's snapshots say of ``model`` at DATES (users not converted before the
    date, the opportunity within 30 days, closed-won within 60): the reference for compare."""
    from pqlkit.engine import Engine
    from pqlkit.learn.dataset import Snapshot, snapshot_rows

    engine = Engine.open(str(folder / model), str(folder / "demo.duckdb"))
    try:
        t = pa.concat_tables(
            snapshot_rows(
                engine,
                "opportunity",
                Snapshot(datetime.fromisoformat(d), timedelta(days=30)),
                also=(("closed_won", timedelta(days=60)),),
            )
            for d in DATES
        )
    finally:
        engine.close()
    return {
        c: np.asarray(t.column(c).to_pylist()) for c in ("score", "is_pql", "label", "closed_won")
    }


def test_compare_shows_both_models_as_learning_measures_each(demo):
    """Long because it scores three dates, takes learning's snapshots of both models as the
    reference, and computes the model page (a backtest) in its thread (about 100 s)."""
    for day in DATES:
        pql(
            "score",
            *opts(demo),
            "--as-of",
            day,
            "--challenger",
            str(demo / "challenger.yml"),
            "--limit",
            "0",
        )
    c = json.loads(
        pql("compare", *opts(demo), "--challenger", str(demo / "challenger.yml"), "--json")
    )
    assert [d[:10] for d in c["dates"]] == list(DATES)
    for who, model in (("live", "pql.yml"), ("challenger", "challenger.yml")):
        ref = snapshots(demo, model)
        m = c[who]
        assert m["version"] == load_model(demo / model).version
        assert c["rows"] == ref["label"].size and c["conversions"] == int(ref["label"].sum())
        assert m["auc"] == pytest.approx(auc(ref["label"], ref["score"]))
        assert m["auc_low"] < m["auc"] < m["auc_high"]
        pqls = ref["is_pql"].astype(bool)
        assert m["pqls"] == int(pqls.sum())
        assert m["pql_to_outcome"]["hits"] == int((pqls & ref["label"].astype(bool)).sum())
        assert m["pql_to_won"]["hits"] == int((pqls & ref["closed_won"].astype(bool)).sum())
        assert m["precision_at_capacity"]["n"] == 20 * len(DATES)
    assert c["challenger"]["pqls"] > c["live"]["pqls"]
    assert c["auc_difference"] == pytest.approx(c["challenger"]["auc"] - c["live"]["auc"])
    assert c["auc_difference"] != 0  # the challenger ranks differently
    assert c["auc_difference_low"] <= c["auc_difference"] <= c["auc_difference_high"]
    table = pql("compare", *opts(demo), "--challenger", str(demo / "challenger.yml"))
    assert "live " + c["live"]["version"] in table and c["challenger"]["version"][:8] in table
    assert "Challenger AUC minus live" in table
    # the model page shows the same comparison in a section of its own
    page = model_page(demo)
    assert '<section id="challenger">' in page and html.escape(c["verdict"]) in page
    assert f"challenger {c['challenger']['version']}" in page and f"{c['rows']:,} users" in page


def model_page(folder: Path) -> str:
    """The web app's model page body, computed as the app computes it (in its thread)."""
    import contextlib

    from pqlkit.usecases.session import Session
    from pqlkit.web import health

    @contextlib.contextmanager
    def engine():
        with Session.open(str(folder / "demo.duckdb"), folder / "pql.yml") as s:
            yield s.engine

    h = health.Health()
    health.start(h, ("key",), False, engine)
    assert h.thread is not None
    h.thread.join(timeout=600)
    assert h.error is None and h.body is not None, h.error
    return h.body


def test_compare_on_every_backend_measures_what_learning_measures(
    world_backend, model_file, tmp_path
):
    """The pairing query on DuckDB and PostgreSQL: each model's figures equal learning's
    snapshots of it on the same backend. Long because it scores two dates and takes four
    snapshots per backend (about 45 s each)."""
    from pqlkit.engine import Engine
    from pqlkit.learn.dataset import Snapshot, snapshot_rows
    from pqlkit.usecases import champion, scoring
    from pqlkit.usecases.session import Session

    text = model_file.read_text(encoding="utf-8")
    assert "pql_score: 60" in text
    other = tmp_path / "challenger.yml"
    other.write_text(text.replace("pql_score: 60", "pql_score: 40"), encoding="utf-8")
    live, challenger = load_model(model_file), load_model(other)
    dates = [datetime(2026, 8, 20), datetime(2026, 8, 27)]
    session = Session(world_backend, live, challenger=challenger)
    for d in dates:
        scoring.score(session, d)
    c = champion.compare(session)  # the challenger scored last
    assert c.challenger.version == challenger.version
    for figures, loaded in ((c.live, live), (c.challenger, challenger)):
        engine = Engine(loaded, world_backend)
        rows = pa.concat_tables(
            snapshot_rows(
                engine,
                "opportunity",
                Snapshot(d, timedelta(days=30)),
                also=(("closed_won", timedelta(days=60)),),
            )
            for d in dates
        )
        y = np.asarray(rows.column("label").to_pylist(), bool)
        flag = np.asarray(rows.column("is_pql").to_pylist(), bool)
        assert c.rows == y.size and c.conversions == int(y.sum()) > 0
        assert figures.auc == pytest.approx(auc(y, rows.column("score").to_pylist()))
        assert figures.pqls == int(flag.sum())
        assert figures.pql_to_outcome.hits == int((flag & y).sum())


def test_compare_before_any_challenger_run_says_what_to_run(demo):
    result = CliRunner().invoke(cli, ["compare", *opts(demo)])
    assert result.exit_code == 1
    assert "pql score --challenger FILE" in result.output


def test_backtest_side_by_side_equals_two_single_backtests(demo):
    """Long because it is four replays of four dates (about 30 s)."""
    window = ("--from", "2026-10-20", "--to", "2026-11-03", "--json")
    runs = [
        CliRunner().invoke(cli, ["backtest", *opts(demo, model), *window, *extra])
        for model, extra in (
            ("pql.yml", ("--challenger", str(demo / "challenger.yml"))),
            ("pql.yml", ()),
            ("challenger.yml", ()),
        )
    ]
    both, live, other = (json.loads(r.output) for r in runs)
    # exit 3 when either replay raises an alert or a warning, as a single backtest does
    assert runs[0].exit_code == max(r.exit_code for r in runs[1:])
    assert both["live"].pop("version") == load_model(demo / "pql.yml").version
    assert both["challenger"].pop("version") == load_model(demo / "challenger.yml").version
    assert both["live"] == live
    assert both["challenger"] == other
    assert both["live"]["weekly"] != both["challenger"]["weekly"]  # two models, not one twice


def test_promote_records_the_history_in_a_table_and_in_the_file(demo, monkeypatch):
    model, challenger = demo / "pql.yml", demo / "challenger.yml"
    before, first = model.read_text(encoding="utf-8"), load_model(model).version
    chosen = load_model(challenger).version
    out = pql("promote", str(challenger), *opts(demo), "--why", "ranks better", "--by", "ana")
    assert "Promoted" in out and "(version " + chosen in out
    assert model.read_text(encoding="utf-8") == challenger.read_text(encoding="utf-8")
    assert (demo / f"pql.{first}.yml").read_text(encoding="utf-8") == before
    # back again, from a file with a history: section: the entry goes into it too
    back = demo / "back.yml"
    back.write_text(before + "history: []\n", encoding="utf-8")
    monkeypatch.setenv("PQL_USER", "bo")
    promoted = json.loads(pql("promote", str(back), *opts(demo), "--why", "rolled back", "--json"))
    assert promoted["in_file"] is True
    entry = load_model(model).model.history[0]
    assert (entry.version, entry.by, entry.why) == (load_model(back).version, "bo", "rolled back")
    assert entry.previous_version == chosen
    rows = json.loads(pql("history", *opts(demo), "--json"))["history"]
    assert [(r["version"], r["promoted_by"], r["why"], r["previous_version"]) for r in rows] == [
        (load_model(back).version, "bo", "rolled back", chosen),
        (chosen, "ana", "ranks better", first),
    ]
    assert rows[0]["written_version"] == load_model(model).version
    assert "rolled back" in pql("history", *opts(demo))
    # a third promotion goes first in the file's section, indented as the entries there
    third = demo / "third.yml"
    third.write_text(model.read_text(encoding="utf-8").replace("name: starter", "name: third"))
    pql("promote", str(third), *opts(demo), "--why", "two\nlines  of why")
    history = load_model(model).model.history
    assert [h.why for h in history] == ["two lines of why", "rolled back"]


def test_promote_refuses_the_live_model_and_an_empty_why(demo):
    same = CliRunner().invoke(cli, ["promote", str(demo / "pql.yml"), *opts(demo), "--why", "x"])
    assert same.exit_code == 1 and "is the live model already" in same.output
    empty = CliRunner().invoke(
        cli, ["promote", str(demo / "challenger.yml"), *opts(demo), "--why", " "]
    )
    assert empty.exit_code == 1 and "--why is empty" in empty.output


def test_the_numbers_of_compare_on_hand_made_rows():
    from pqlkit.learn.compare import fast_auc, top_hits, wilson

    rng = np.random.default_rng(3)
    for _ in range(50):
        y = rng.random(200) < 0.2
        s = rng.integers(0, 12, 200).astype(float)  # many ties
        assert fast_auc(y, s) == pytest.approx(auc(y, s))
    assert np.isnan(fast_auc(np.zeros(5, bool), np.arange(5.0)))
    # Wilson's interval for 0 of 10 and 5 of 10 (as tabulated)
    assert wilson(0, 10)[1:] == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10)[1:] == pytest.approx((0.2366, 0.7634), abs=1e-4)
    # the top 2 of scores 9, 5, 5, 5: the 9 and a third of the three tied fives' conversions
    y = np.array([True, True, False, False])
    assert top_hits(y, np.array([9.0, 5, 5, 5]), 2) == pytest.approx(1 + 1 / 3)
    assert top_hits(y, np.array([9.0, 5, 5, 5]), 10) == 2
