"""Records store on SQLite and on a real PostgreSQL server: round trip, chain, tamper, migration,
concurrent writers, queries (yield, Cpk, trend) against known answers."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing as mp
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, inspect, text

from harness.errors import ConfigError, EvidenceError
from harness.evidence.model import Artefact, RunRecord, TestRecord
from harness.evidence.records import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    RecordStore,
    StoredRun,
    T,
    cpk_of,
    normalise,
    run_hash,
)
from harness.measurement import Measurement, Outcome
from tests_unit.pg_server import create_database, postgres_server


@pytest.fixture(scope="module")
def pg_base() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "records.sqlite")
    return create_database(request.getfixturevalue("pg_base"))


def make_run(run_id: str, *, station: str = "sim-1", dut: str = "D1", product: str = "cam-a",
             gain: float = 0.1, started: str = "2026-11-20T10:00:00.000000+00:00",
             outcome: Outcome | None = None) -> RunRecord:
    m1 = Measurement.judged("system_gain", gain, "DN/e-", low=0.09, high=0.11,
                            marginal_low=0.092, marginal_high=0.108, limit_id="EMVA-K-1",
                            condition={"gain_db": 0, "wavelength_nm": 525})
    m2 = Measurement.judged("hot_pixels", 3, "px", high=10, limit_id="DEF-HOT-1")
    t1 = TestRecord("tests_hil/test_emva.py::test_gain", worst_of(m1), title="Gain",
                    family="emva1288", measurements=(m1,))
    t2 = TestRecord("tests_hil/test_defects.py::test_hot", m2.outcome, family="defects",
                    measurements=(m2,), errors=())
    return RunRecord(
        run_id=run_id, station=station, outcome=outcome or worst_of(m1, m2), product=product,
        dut_serial=dut, dut_firmware="1.0.3", operator="ana", started=started,
        ended=started, limits_file="tests_hil/limits/cam-a.yaml", limits_hash="ab" * 32,
        software={"harness": "0.1.0", "numpy": "2.1"}, tests=(t1, t2),
        artefacts=(Artefact("11" * 32, "frame", path="out/cs1"),),
        devices=({"role": "camera", "kind": "camera", "driver": "sim", "vendor": "Sim",
                  "model": "SC-1", "serial": "S1", "firmware": "2", "extra": {"bits": 12}},
                 {"role": "light", "kind": "light", "vendor": "Sim", "serial": "L1",
                  "channel": 3}),
        calibrations=({"role": "meter", "certificate": "C-77", "due": "2027-01-01"},))


def worst_of(*ms: Measurement) -> Outcome:
    return max((m.outcome for m in ms), key=lambda o: o.rank)


def test_round_trip_chain_and_verify(store_url: str) -> None:
    with RecordStore(store_url) as store:
        assert store.version() == SCHEMA_VERSION
        a = store.add_run(make_run("r1"))
        b = store.add_run(make_run("r2", gain=0.093))
        c = store.add_run(make_run("r3", station="sim-2"))
        assert (a.chain_seq, a.prev_hash) == (1, GENESIS_HASH)
        assert (b.chain_seq, b.prev_hash) == (2, a.record_hash)
        assert (c.chain_seq, c.prev_hash) == (1, GENESIS_HASH)
        back = store.get_run("r2")
        assert back == normalise(make_run("r2", gain=0.093))
        assert back.devices[1]["extra"] == {"channel": 3}
        assert run_hash(back, a.record_hash) == b.record_hash
        assert store.verify().ok and store.verify().checked == 3
        with pytest.raises(EvidenceError, match="already stored"):
            store.add_run(make_run("r1"))
        with pytest.raises(ConfigError, match="no run 'nope'"):
            store.get_run("nope")


def test_verify_finds_edits_and_removals(store_url: str) -> None:
    with RecordStore(store_url) as store:
        for i in range(4):
            store.add_run(make_run(f"r{i}"))
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE measurements SET value = 0.1 WHERE run_pk = "
                              "(SELECT id FROM runs WHERE run_id = 'r1') AND name = "
                              "'hot_pixels'"))
        report = store.verify()
        assert not report.ok and len(report.problems) == 1
        assert "run r1 was edited" in report.problems[0]
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE measurements SET value = 3 WHERE name = 'hot_pixels'"))
        assert store.verify().ok
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM runs WHERE run_id = 'r2'"))
        problems = " ".join(store.verify().problems)
        assert "run r3 is #4 in the chain, expected #3" in problems
        assert "r3 does not chain" in problems


def test_migrates_a_v1_database(store_url: str) -> None:
    path = store_url
    with RecordStore(path, upto=1) as old:
        assert old.version() == 1
        cols = {c["name"] for c in inspect(old.engine).get_columns("runs")}
        assert "record_hash" not in cols
        with old.engine.begin() as conn:  # a run as the v1 code wrote it
            rec = normalise(make_run("old-1"))
            pk = conn.execute(insert(T["runs"]).values(
                run_id=rec.run_id, station=rec.station, outcome=rec.outcome.value,
                software=dict(rec.software))).inserted_primary_key
            assert pk is not None
            conn.execute(insert(T["measurements"]).values(
                run_pk=pk[0], position=0, test_id="t", name="hot_pixels", value=4.0,
                outcome="PASS", condition={}))
    with RecordStore(path) as store:
        assert store.version() == SCHEMA_VERSION
        assert store.verify().ok
        assert store.get_run("old-1").outcome is rec.outcome
        new = store.add_run(make_run("new-1"))
        assert new.chain_seq == 2 and new.prev_hash == store.chain_info("old-1").record_hash
        cols = {c["name"] for c in inspect(store.engine).get_columns("runs")}
        assert {"attempt", "rejudged_from", "signature", "signing_key"} <= cols
        assert "outputs" in inspect(store.engine).get_table_names()


def test_v5_numbers_the_attempts_of_runs_stored_before_it(store_url: str) -> None:
    """Runs stored at v4 (no attempt column) get their attempt numbers from the store order."""
    with RecordStore(store_url, upto=4) as old:
        assert old.version() == 4
        with old.engine.begin() as conn:
            for i, (dut, product) in enumerate([("D1", "cam-a"), ("D2", "cam-a"),
                                                ("D1", "cam-a"), ("D1", "cam-b"),
                                                ("", "cam-a"), ("D1", "cam-a")]):
                conn.execute(insert(T["runs"]).values(
                    run_id=f"v4-{i}", station="sim-1", outcome="PASS", product=product,
                    dut_serial=dut, software={}, chain_seq=i + 1))
    with RecordStore(store_url) as store:
        assert [(r.run_id, r.attempt) for r in sorted(store.runs(), key=lambda r: r.run_id)
                ] == [("v4-0", 1), ("v4-1", 1), ("v4-2", 2), ("v4-3", 1), ("v4-4", 1),
                      ("v4-5", 3)]
        assert store.add_run(make_run("v5-0", dut="D1")).attempt == 4


def test_attempts_rejudged_runs_and_signatures(store_url: str) -> None:
    """Retests are new attempts of the serial; a re-judged run is not an attempt (it carries
    the attempt it re-judged); a signer's signature over the record hash is kept."""

    class Signer:
        fingerprint = "SHA256:test-key"

        def sign(self, data: bytes) -> bytes:
            return hashlib.sha256(b"secret" + data).digest()

    with RecordStore(store_url) as store:
        first = store.add_run(make_run("a1", dut="D7"))
        second = store.add_run(make_run("a2", dut="D7", outcome=Outcome.PASS),
                               signer=Signer())
        rejudged = store.add_run(replace(make_run("a2-rj", dut="D7"), rejudged_from="a2"))
        third = store.add_run(make_run("a3", dut="D7"))
        other = store.add_run(make_run("b1", dut="D7", product="cam-b"))
        blank = store.add_run(make_run("n1", dut=""))
        assert [s.attempt for s in (first, second, rejudged, third, other, blank)] == \
            [1, 2, 2, 3, 1, 1]
        assert store.get_run("a2-rj").rejudged_from == "a2"
        assert store.get_run("a2").rejudged_from == ""
        assert second.signing_key == "SHA256:test-key"
        assert base64.b64decode(second.signature) == \
            hashlib.sha256(b"secret" + second.record_hash.encode("ascii")).digest()
        assert store.chain_info("a2") == second and store.chain_info("a1").signature == ""
        summary = {r.run_id: r for r in store.runs()}
        assert (summary["a2"].signing_key, summary["a2-rj"].rejudged_from,
                summary["a3"].attempt) == ("SHA256:test-key", "a2", 3)
        assert store.verify().ok

        seen: list[str] = []

        def signed(link: StoredRun, record: RunRecord) -> list[str]:
            seen.append(record.run_id)
            return [f"run {link.run_id}: unsigned"] if not link.signature else []

        report = store.verify(checks=[signed])
        assert sorted(seen) == ["a1", "a2", "a2-rj", "a3", "b1", "n1"]
        assert len(report.problems) == 5 and "run a1: unsigned" in report.problems
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE runs SET attempt = 1 WHERE run_id = 'a3'"))
        (problem,) = store.verify().problems
        assert "run a3 is stored as attempt 1 of DUT D7, but is attempt 3" in problem


def test_rejudged_from_is_hashed_only_when_set() -> None:
    plain = make_run("h1")
    assert "rejudged_from" not in normalise(plain).as_dict()
    rj = replace(plain, rejudged_from="h0")
    assert normalise(rj).rejudged_from == "h0"
    assert run_hash(rj, GENESIS_HASH) != run_hash(plain, GENESIS_HASH)


def test_a_failing_signer_stores_nothing(store_url: str) -> None:
    class Broken:
        fingerprint = "k"

        def sign(self, data: bytes) -> bytes:
            raise OSError("token removed")

    with RecordStore(store_url) as store:
        with pytest.raises(EvidenceError, match="cannot sign run s1: OSError: token removed"):
            store.add_run(make_run("s1"), signer=Broken())
        assert store.runs() == []


def _writer(url: str, worker: int, count: int) -> None:
    with RecordStore(url) as store:
        for i in range(count):
            station = "sim-1" if i % 3 else "sim-2"
            store.add_run(make_run(f"w{worker}-{i}", station=station, dut=f"D{worker}{i}"))


def test_concurrent_writers_lose_nothing(store_url: str) -> None:
    """Four processes create the schema and append runs to the same stations at once: all
    stored, chains intact."""
    workers, count = 4, 12
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(store_url, w, count)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers
    with RecordStore(store_url) as store:
        stored = store.runs()
        assert sorted(r.run_id for r in stored) == sorted(
            f"w{w}-{i}" for w in range(workers) for i in range(count))
        for station in ("sim-1", "sim-2"):
            seqs = sorted(r.chain_seq for r in stored if r.station == station)
            assert seqs == list(range(1, len(seqs) + 1))
        report = store.verify()
        assert report.ok, report.problems


def test_queries_yield_cpk_trend(store_url: str) -> None:
    """Cpk against the closed form: values μ + σ·z with z standardised (mean 0, sd 1 exactly)."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=20)
    z = (z - z.mean()) / z.std(ddof=1)
    mu, sigma = 0.1004, 0.0015
    values = mu + sigma * z
    with RecordStore(store_url) as store:
        for i, v in enumerate(values):
            day = 20 + i % 2
            store.add_run(make_run(f"q{i}", dut=f"D{i}", gain=float(v),
                                   station="sim-1" if i < 12 else "sim-2",
                                   started=f"2026-11-{day}T10:00:{i:02d}.000000+00:00"))
        # A retest of D0 with a wild value on another product must not enter cam-a's Cpk.
        store.add_run(make_run("other", dut="D0", gain=5.0, product="cam-b",
                               started="2026-11-22T00:00:00.000000+00:00"))
        rows = {r.name: r for r in store.cpk(product="cam-a")}
        gain = rows["system_gain"]
        assert gain.n == 20
        assert gain.mean == pytest.approx(mu, rel=1e-12)
        assert gain.std == pytest.approx(sigma, rel=1e-9)
        assert gain.cpk == pytest.approx(min(0.11 - mu, mu - 0.09) / (3 * sigma), rel=1e-9)
        assert gain.cp == pytest.approx(0.02 / (6 * sigma), rel=1e-9)
        fails = [f"D{i}" for i, v in enumerate(values) if not 0.09 <= v <= 0.11]
        y = {r.limit_id: r for r in store.yield_by_limit(product="cam-a")}["EMVA-K-1"]
        assert (y.judged_first, y.judged_latest) == (20, 20)
        assert y.failing_latest == tuple(sorted(fails))
        trend = store.trend(product="cam-a", measurement="system_gain")
        assert [(t.station, t.day, t.runs) for t in trend] == [
            ("sim-1", "2026-11-20", 6), ("sim-1", "2026-11-21", 6),
            ("sim-2", "2026-11-20", 4), ("sim-2", "2026-11-21", 4)]
        first = trend[0]
        assert first.mean == pytest.approx(float(np.mean(values[0:12:2])), rel=1e-9)
        assert len(store.runs(since="2026-11-21")) == 11
        assert [r.run_id for r in store.runs(station="sim-2", limit=1)] == ["q19"]
        with pytest.raises(ConfigError, match="--since"):
            store.runs(since="last tuesday")


def test_cpk_one_sided_and_degenerate() -> None:
    v = np.array([1.0, 2.0, 3.0])
    mean, std, cp, cpk = cpk_of(v, None, 5.0)
    assert (mean, std, cp) == (2.0, 1.0, None) and cpk == pytest.approx(1.0)
    assert cpk_of(np.array([1.0]), 0.0, 2.0) == (1.0, None, None, None)
    assert cpk_of(np.array([]), 0.0, 2.0) == (None, None, None, None)


# Statistics per unit --------------------------------------------------------------------------

def with_figures(run: RunRecord, *figures: Measurement) -> RunRecord:
    """``run`` with one more test holding ``figures``."""
    test = TestRecord("tests_hil/test_optics.py::test_mtf", Outcome.PASS, family="sfr",
                      measurements=figures)
    return replace(run, tests=(*run.tests, test))


def at(n: int) -> str:
    return f"2026-11-20T10:{n:02d}:00.000000+00:00"


def test_yield_and_cpk_per_unit_against_a_hand_computation(store_url: str) -> None:
    """U1 is tested three times (FAIL, FAIL, then PASS on another station), U2 passes first
    time, U3 fails only, U4's only run is INCOMPLETE (tested, not passing). A re-judged run of
    U3 that passes is not an attempt; an INFO figure and a flagged figure never count."""
    info = Measurement.judged("temperature", 41.0, "degC")  # no limit: INFO
    flagged = Measurement.judged("system_gain", 7.0, "DN/e-", low=0.09, high=0.11,
                                 limit_id="EMVA-K-1", flag="negative variance",
                                 condition={"gain_db": 6})
    runs = [("u1-a", "U1", 0.080, None, "sim-1"), ("u2-a", "U2", 0.102, None, "sim-1"),
            ("u1-b", "U1", 0.085, None, "sim-1"), ("u3-a", "U3", 0.115, None, "sim-1"),
            ("u4-a", "U4", 0.098, Outcome.INCOMPLETE, "sim-1"),
            ("u1-c", "U1", 0.100, None, "sim-2")]
    with RecordStore(store_url) as store:
        for i, (run_id, dut, gain, outcome, station) in enumerate(runs):
            store.add_run(with_figures(make_run(run_id, dut=dut, gain=gain, outcome=outcome,
                                                station=station, started=at(i)),
                                       info, flagged))
        store.add_run(replace(make_run("u3-rj", dut="U3", gain=0.105, started=at(9)),
                              rejudged_from="u3-a"))
        assert [r.attempt for r in sorted(store.runs(), key=lambda r: r.started)] == \
            [1, 1, 2, 1, 1, 3, 1]
        assert [r.outcome for r in sorted(store.runs(), key=lambda r: r.started)][:6] == [
            Outcome.FAIL, Outcome.PASS, Outcome.FAIL, Outcome.FAIL, Outcome.INCOMPLETE,
            Outcome.PASS]

        report = store.unit_yield(product="cam-a")
        got = {(s.product, s.station): (s.units, s.first_pass, s.final_pass)
               for s in report.stations}
        # sim-1: U1 (FAIL, FAIL there), U2 (PASS), U3 (FAIL), U4 (INCOMPLETE)
        # sim-2: U1 (its first run there passes); all stations: U2 first pass, U1 + U2 final
        assert got == {("cam-a", "sim-1"): (4, 1, 1), ("cam-a", "sim-2"): (1, 1, 1),
                       ("cam-a", None): (4, 1, 2)}
        total = next(s for s in report.stations if s.station is None)
        assert (total.first_pass_yield, total.final_yield) == (1 / 4, 2 / 4)
        limits = {lim.limit_id: lim for lim in report.limits}
        assert set(limits) == {"EMVA-K-1", "DEF-HOT-1"}  # the INFO figure has no limit
        gain = limits["EMVA-K-1"]
        assert (gain.judged_first, gain.judged_latest) == (4, 4)
        assert (gain.failing_first, gain.failing_latest) == (("U1", "U3"), ("U3",))
        assert limits["DEF-HOT-1"].failing_first == limits["DEF-HOT-1"].failing_latest == ()

        # With re-judged runs: U3's only attempt now has the re-judged verdict (PASS).
        rj = {s.station: (s.units, s.first_pass, s.final_pass)
              for s in store.unit_yield(product="cam-a", rejudged=True).stations}
        assert rj[None] == (4, 2, 3) and rj["sim-1"] == (4, 2, 2)

        # Cpk: one value per unit; the flagged value (gain_db 6) is never a sample.
        (latest,) = [r for r in store.cpk(product="cam-a", limit_id="EMVA-K-1")]
        assert latest.condition == {"gain_db": 0, "wavelength_nm": 525}
        values = [0.100, 0.102, 0.115, 0.098]  # U1's 3rd, U2, U3, U4
        mean = (0.100 + 0.102 + 0.115 + 0.098) / 4
        std = (sum((v - mean) ** 2 for v in values) / (4 - 1)) ** 0.5
        assert latest.n == 4 and latest.mean == pytest.approx(mean, rel=1e-12)
        assert latest.std == pytest.approx(std, rel=1e-12)
        assert latest.cp == pytest.approx((0.11 - 0.09) / (6 * std), rel=1e-12)
        assert latest.cpk == pytest.approx(min(0.11 - mean, mean - 0.09) / (3 * std),
                                           rel=1e-12)
        (first,) = store.cpk(product="cam-a", limit_id="EMVA-K-1", attempt="first")
        values = [0.080, 0.102, 0.115, 0.098]  # U1's 1st, U2, U3, U4
        mean = sum(values) / 4
        std = (sum((v - mean) ** 2 for v in values) / 3) ** 0.5
        assert (first.n, first.attempt) == (4, "first")
        assert first.mean == pytest.approx(mean, rel=1e-12)
        assert first.cpk == pytest.approx(min(0.11 - mean, mean - 0.09) / (3 * std),
                                          rel=1e-12)
        assert not [r for r in store.cpk(product="cam-a") if r.name == "temperature"]
        with pytest.raises(ConfigError, match=r"--attempt.*allowed: first, latest"):
            store.cpk(attempt="second")


def mtf_corners(mtf: list[float], **kwargs: object) -> tuple[Measurement, ...]:
    """The eight MTF50-CORNER figures of one module: four corners x two orientations."""
    fields = [f"{c}_{o}" for c in ("top_left", "top_right", "bottom_left", "bottom_right")
              for o in ("vertical", "horizontal")]
    return tuple(Measurement.judged("mtf50_corner", v, "cy/px", low=0.25, limit_id="MTF50-CORNER",
                                    condition={"zone": "corner", "field": f}, **kwargs)
                 for v, f in zip(mtf, fields, strict=True))


def test_cpk_keeps_each_corner_and_orientation_apart(store_url: str) -> None:
    """Eight corner values of a unit are eight conditions, each with one value per unit; a
    unit with a duplicate row is left out (counted), another limit version is its own row."""
    rng = np.random.default_rng(7)
    table = rng.uniform(0.28, 0.40, size=(3, 8))
    with RecordStore(store_url) as store:
        for u in range(3):
            store.add_run(with_figures(make_run(f"m{u}", dut=f"M{u}", started=at(u)),
                                       *mtf_corners(list(table[u]))))
        # M3 has one field twice in its run: never pooled, the unit is left out of that field
        dup = mtf_corners([0.3] * 8)
        store.add_run(with_figures(make_run("m3", dut="M3", started=at(3)), *dup, dup[0]))
        # M4 was judged under another limit version
        store.add_run(replace(with_figures(make_run("m4", dut="M4", started=at(4)),
                                           *mtf_corners([0.5] * 8)), limits_hash="cd" * 32))
        rows = store.cpk(limit_id="MTF50-CORNER", limits_hash="abab")
        assert len(rows) == 8
        assert len({r.condition["field"] for r in rows}) == 8
        for r in rows:
            fields = [f"{c}_{o}" for c in ("top_left", "top_right", "bottom_left",
                                           "bottom_right") for o in ("vertical", "horizontal")]
            column = fields.index(r.condition["field"])
            expected = [*table[:, column], 0.3]
            if column == 0:
                expected = list(table[:, column])
            assert r.n == len(expected)
            assert r.duplicates == (1 if column == 0 else 0)
            assert r.mean == pytest.approx(float(np.mean(expected)), rel=1e-12)
            assert r.std == pytest.approx(float(np.std(expected, ddof=1)), rel=1e-12)
            assert r.low == 0.25 and r.high is None and r.cp is None
        other = store.cpk(limit_id="MTF50-CORNER", limits_hash="cd" * 32)
        assert len(other) == 8 and {(r.n, r.std) for r in other} == {(1, None)}
        assert len(store.cpk(limit_id="MTF50-CORNER")) == 16
        with pytest.raises(ConfigError, match="--limits-hash: 'xyz' is not a limits hash"):
            store.cpk(limits_hash="xyz")


def test_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        RecordStore("mysql://u@h/db")
    with pytest.raises(EvidenceError, match="records database"):
        RecordStore("postgresql://nobody@127.0.0.1:1/none")


def test_a_characterisation_run_is_not_an_attempt(store_url: str) -> None:
    """Characterising a unit before its qualification must not take its first pass."""
    from dataclasses import replace

    with RecordStore(store_url) as store:
        char = store.add_run(replace(make_run("c1", dut="U9"), characterisation=True,
                                     outcome=Outcome.INCOMPLETE))
        first = store.add_run(make_run("q1", dut="U9"))
        assert (char.attempt, first.attempt) == (0, 1)
        report = store.unit_yield()
        assert store.verify().ok
    [row] = [r for r in report.stations if r.station == "sim-1"]
    assert (row.units, row.first_pass, row.final_pass) == (1, 1, 1)
