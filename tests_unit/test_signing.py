"""Station signatures (Ed25519): keygen, key file permissions, and `harness records verify
--keys` catching what the sha256 chain alone cannot (an edited run whose chain was recomputed,
a run re-stored without the station's key)."""

from __future__ import annotations

import base64
import hashlib
import logging
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.evidence.records import RecordStore, T, run_hash
from harness.evidence.records.signing import (
    ENV_KEY,
    generate_keys,
    load_public_keys,
    load_signer,
    resolve_signer,
    station_key_path,
)
from harness.evidence.run import RunEvidence
from tests_unit.test_records import make_run

runner = CliRunner()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    result = runner.invoke(app, ["station", "keygen", "--station-id", "sim-1", "--out",
                                 str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def signed_db(path: Path, keys: Path, n: int = 3) -> str:
    signer = load_signer(keys / "sim-1.key")
    with RecordStore(path) as store:
        for i in range(n):
            store.add_run(make_run(f"r{i}", started=f"2026-11-2{i}T10:00:00.000000+00:00"),
                          signer=signer)
    return str(path)


def verify(db: str, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["records", "verify", "--records", db, *extra])
    return result.exit_code, " ".join(result.output.split())  # unwrapped


def test_keygen_writes_a_private_key_only_the_owner_reads(keys: Path) -> None:
    private, public = keys / "sim-1.key", keys / "sim-1.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    signer = load_signer(private)
    assert len(signer.fingerprint) == 64 and signer.fingerprint not in repr(signer.key)
    assert "key=" not in repr(signer)
    again = runner.invoke(app, ["station", "keygen", "--station-id", "sim-1", "--out",
                                str(keys)])
    assert again.exit_code == 2 and "already exists" in again.output
    assert load_signer(private).fingerprint == signer.fingerprint  # not overwritten
    bad = runner.invoke(app, ["station", "keygen", "--station-id", "../x", "--out", str(keys)])
    assert bad.exit_code == 2 and "--station-id" in bad.output


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_open_to_group_or_others_is_refused(keys: Path, mode: int) -> None:
    private = keys / "sim-1.key"
    private.chmod(mode)
    with pytest.raises(ConfigError) as info:
        load_signer(private)
    message = str(info.value)
    assert "\n" not in message and str(private) in message and "signing_key" in message
    assert f"mode {mode:04o}" in message and "allowed: 0600 or 0400" in message


def test_bad_key_files_are_one_line_errors(tmp_path: Path, keys: Path) -> None:
    junk = tmp_path / "junk.key"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    junk.chmod(0o600)
    with pytest.raises(ConfigError, match="not an unencrypted PEM Ed25519 private key"):
        load_signer(junk)
    with pytest.raises(ConfigError, match="signing key cannot be read"):
        load_signer(tmp_path / "missing.key")
    (tmp_path / "pubs").mkdir()
    (tmp_path / "pubs" / "st.pub").write_text("nonsense")
    with pytest.raises(ConfigError, match=r"st\.pub: --keys: not a PEM Ed25519 public key"):
        load_public_keys(tmp_path / "pubs")
    with pytest.raises(ConfigError, match=r"no <station id>\.pub"):
        load_public_keys(tmp_path)
    code, output = verify(signed_db(tmp_path / "db.sqlite", keys), "--keys",
                          str(tmp_path / "nope"))
    assert code == 2 and "not a folder" in output


def test_key_path_from_the_station_setting_else_the_environment(tmp_path: Path,
                                                                keys: Path) -> None:
    station_file = keys / "station.yaml"
    assert station_key_path({"signing_key": "sim-1.key"}, station_file) == keys / "sim-1.key"
    assert station_key_path({}, station_file) is None
    env = {ENV_KEY: str(keys / "sim-1.key")}
    assert resolve_signer(None, env={}) is None
    from_env = resolve_signer(None, env=env)
    assert from_env is not None
    assert resolve_signer(keys / "sim-1.key", env={ENV_KEY: "/nope"}) == from_env
    with pytest.raises(ConfigError, match=r"\$HARNESS_SIGNING_KEY"):
        resolve_signer(None, env={ENV_KEY: str(tmp_path / "missing.key")})


def test_untouched_signed_records_verify_with_the_right_keys(tmp_path: Path,
                                                             keys: Path) -> None:
    db = signed_db(tmp_path / "db.sqlite", keys)
    code, output = verify(db, "--keys", str(keys))
    assert code == 0 and "3 runs" in output and "every signature" in output, output
    with RecordStore(db) as store:
        link = store.chain_info("r1")
    assert link.signing_key == load_signer(keys / "sim-1.key").fingerprint
    assert len(base64.b64decode(link.signature)) == 64


def recompute_chain(db: str, station: str) -> None:
    """What a database owner can do without the key: today's hash chain, recomputed."""
    runs = T["runs"]
    with RecordStore(db) as store:
        with store.engine.begin() as conn:
            rows = conn.execute(select(runs.c.id, runs.c.run_id)
                                .where(runs.c.station == station)
                                .order_by(runs.c.chain_seq)).all()
        prev = "0" * 64
        for pk, run_id in rows:
            digest = run_hash(store.get_run(run_id), prev)
            with store.engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.id == pk)
                             .values(prev_hash=prev, record_hash=digest))
            prev = digest


def test_an_edited_measurement_with_a_recomputed_chain_is_caught(tmp_path: Path,
                                                                 keys: Path) -> None:
    db = signed_db(tmp_path / "db.sqlite", keys)
    with RecordStore(db) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE measurements SET value = 0.105 WHERE run_pk = (SELECT id FROM "
                          "runs WHERE run_id = 'r1') AND name = 'system_gain'"))
    assert verify(db)[0] == 1  # the plain chain sees the edit ...
    recompute_chain(db, "sim-1")
    code, output = verify(db)
    assert code == 0, output  # ... but not once the chain is recomputed
    code, output = verify(db, "--keys", str(keys))
    assert code == 1
    assert "run r1: its signature does not match its content" in output
    assert "run r0:" not in output  # before the edit, untouched


def test_a_run_restored_without_the_key_is_reported_unsigned(tmp_path: Path,
                                                             keys: Path) -> None:
    db = signed_db(tmp_path / "db.sqlite", keys, n=2)
    with RecordStore(db) as store:  # e.g. `harness report --from-journal` of an edited journal
        store.add_run(replace(make_run("r9", gain=0.1), operator="mallory"))
    assert verify(db)[0] == 0
    code, output = verify(db, "--keys", str(keys))
    assert code == 1 and "run r9: unsigned (stored without the station's key)" in output
    assert "run r0" not in output and "run r1" not in output


def test_a_run_signed_with_another_key_is_caught(tmp_path: Path, keys: Path) -> None:
    db = str(tmp_path / "db.sqlite")
    rogue = generate_keys("sim-1", tmp_path / "rogue")
    with RecordStore(db) as store:
        store.add_run(make_run("r0"), signer=load_signer(rogue.private))
    code, output = verify(db, "--keys", str(keys))
    assert code == 1 and "run r0: signed by key" in output and "not the station's key" in output
    other = tmp_path / "other-keys"
    other.mkdir()
    (other / "sim-9.pub").write_bytes((keys / "sim-1.pub").read_bytes())
    code, output = verify(db, "--keys", str(other))
    assert code == 1 and "no public key sim-1.pub" in output


# A station's run, signed at store -----------------------------------------------------------

def station_run(tmp_path: Path, db: Path, **kwargs: Any) -> RunEvidence:
    """One judged test through RunEvidence, stored in ``db``; ``kwargs`` go to RunEvidence."""
    from harness.measurement import Measurement, Outcome

    spec = Path(__file__).parent.parent / "tests_hil" / "limits" / "cm12.yaml"
    run = RunEvidence(tmp_path / "evidence", station="sim-1", records=db, operator="ana",
                      dut={"serial": "D1", "product": "cm12", "firmware": "1.0"},
                      limits_file=str(spec),
                      limits_hash=hashlib.sha256(spec.read_bytes()).hexdigest(),
                      **kwargs)
    run.test_start("t.py::test_gain", title="Gain", family="emva1288")
    run.measurement(Measurement.judged("system_gain_dn_per_e", 0.42, "DN/e-", low=0.38,
                                       high=0.46, limit_id="EMVA-K", test_id="t.py::test_gain"))
    run.test_end("t.py::test_gain", Outcome.PASS)
    assert run.finish(Outcome.PASS).outcome is Outcome.PASS
    return run


def test_a_station_run_is_signed_and_names_its_software(tmp_path: Path, keys: Path) -> None:
    db = tmp_path / "rec.sqlite"
    run = station_run(tmp_path, db, signing_key=keys / "sim-1.key")
    assert run.stored is not None
    assert run.stored.signing_key == load_signer(keys / "sim-1.key").fingerprint
    code, output = verify(str(db), "--keys", str(keys))
    assert code == 0, output
    with RecordStore(db) as store:
        software = store.get_run(run.run_id).software
    assert len(software["harness.sha256"]) == 64 and software["harness"]
    assert int(software["harness.files"]) > 100


def test_the_key_comes_from_the_environment_when_the_station_names_none(
        tmp_path: Path, keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, str(keys / "sim-1.key"))
    run = station_run(tmp_path, tmp_path / "rec.sqlite")
    assert run.stored is not None and run.stored.signature


def test_a_key_open_to_others_stops_the_run_before_it_starts(tmp_path: Path,
                                                             keys: Path) -> None:
    (keys / "sim-1.key").chmod(0o644)
    with pytest.raises(ConfigError, match="open to group/others"):
        station_run(tmp_path, tmp_path / "rec.sqlite", signing_key=keys / "sim-1.key")
    assert not (tmp_path / "evidence").exists()


def test_the_private_key_never_leaves_its_file(tmp_path: Path, keys: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Not in the journal, the database, the sign-off page, a log or the console: neither
    the raw key, nor its hex or base64, nor the PEM body, nor any line of it."""
    from cryptography.hazmat.primitives import serialization

    caplog.set_level(logging.DEBUG)
    key_file = keys / "sim-1.key"
    pem = key_file.read_text()
    raw = load_signer(key_file).key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())
    body_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    secrets = [raw, raw.hex().encode(), base64.b64encode(raw), base64.b64encode(raw)[:40],
               "".join(body_lines).encode(), *(line.encode() for line in body_lines)]

    db = tmp_path / "rec.sqlite"
    run = station_run(tmp_path, db, signing_key=key_file)
    consoles = [runner.invoke(app, args).output for args in (
        ["records", "verify", "--records", str(db), "--keys", str(keys)],
        ["records", "runs", "--records", str(db), "--json"],
        ["signoff", run.run_id, "--records", str(db), "--keys", str(keys), "--out",
         str(tmp_path / "signoff" / "page.html")])]
    captured = capsys.readouterr()
    texts = [c.encode() for c in (*consoles, captured.out, captured.err, caplog.text)]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and keys not in p.parents]
    assert {p.name for p in files} >= {"journal.jsonl", "rec.sqlite", "page.html"}
    for where, data in [*((str(p), p.read_bytes()) for p in files),
                        *(("console/log", t) for t in texts)]:
        for secret in secrets:
            assert secret not in data, f"private key material in {where}"
