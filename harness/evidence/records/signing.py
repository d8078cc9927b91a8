"""Station signing keys (Ed25519): make a key pair, load a station's key, check signatures.

Each station signs the ``record_hash`` of every run it stores (:meth:`RecordStore.add_run`
with a signer). The hash covers the run's content and its link to the station's previous
run, so a database owner who edits a value and recomputes the sha256 chain cannot make a
matching signature without the station's private key, and a run re-stored without that key
is unsigned. :func:`signature_check` checks every run against the station's public key
(``<station id>.pub`` in a keys folder) during ``harness records verify --keys DIR``.

The private key stays in its file (PEM, PKCS #8, mode 0600) and in this process: it is never
journaled, stored, logged or printed; only its public fingerprint (the sha256 of the raw
32-byte public key, :func:`fingerprint`) reaches the database and the sign-off page. A key
file that group or others may read or write is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from harness.errors import ConfigError
from harness.evidence.model import RunRecord
from harness.evidence.records.chain import RunCheck, StoredRun
from harness.paths import safe_component

ENV_KEY = "HARNESS_SIGNING_KEY"
SETTING = "signing_key"
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
PRIVATE_MODE = 0o600


def fingerprint(key: Ed25519PublicKey) -> str:
    """sha256 (hex) of the raw 32-byte public key: what the database keeps of the key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class StationSigner:
    """A station's private key, able to sign; its repr shows only the fingerprint."""

    fingerprint: str
    key: Ed25519PrivateKey = field(repr=False, compare=False)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


@dataclass(frozen=True)
class KeyPair:
    """The files ``harness station keygen`` wrote."""

    private: Path
    public: Path
    fingerprint: str


def generate_keys(station_id: str, out_dir: Path) -> KeyPair:
    """Write ``out_dir/<id>.key`` (private, mode 0600) and ``out_dir/<id>.pub``; an existing
    key is never overwritten."""
    safe_component(station_id, "--station-id")
    private = out_dir / f"{station_id}{PRIVATE_SUFFIX}"
    public = out_dir / f"{station_id}{PUBLIC_SUFFIX}"
    for path in (private, public):
        if path.exists():
            raise ConfigError("already exists: keygen never overwrites a key (move the old "
                              "pair away to make a new one)", source=str(path))
    out_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)  # whatever the umask
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPair(private, public, fingerprint(key.public_key()))


def load_signer(path: str | Path, *, field_name: str = SETTING) -> StationSigner:
    """The station's key from ``path``; a one-line ConfigError if it is missing, readable or
    writable by group/others, or not an unencrypted PEM Ed25519 private key."""
    path = Path(path).expanduser()
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"signing key cannot be read: {exc.strerror}; allowed: a private "
                          "key file made by `harness station keygen`", source=str(path),
                          field=field_name) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError("signing key is not a file; allowed: a private key file made by "
                          "`harness station keygen`", source=str(path), field=field_name)
    if info.st_mode & 0o077:
        raise ConfigError(f"private key is open to group/others (mode "
                          f"{stat.S_IMODE(info.st_mode):04o}); allowed: 0600 or 0400 "
                          f"(chmod 600 {path})", source=str(path), field=field_name)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None  # the library's message is not echoed: it could quote the file
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("not an unencrypted PEM Ed25519 private key; allowed: a key made by "
                          "`harness station keygen`", source=str(path), field=field_name)
    return StationSigner(fingerprint(key.public_key()), key)


def station_key_path(settings: Mapping[str, object], station_file: Path | None = None
                     ) -> Path | None:
    """The station file's ``settings.signing_key`` (relative to the station file), if any."""
    value = settings.get(SETTING)
    if value is None or value == "":
        return None
    path = Path(str(value)).expanduser()
    if not path.is_absolute() and station_file is not None:
        path = station_file.parent / path
    return path


def resolve_signer(path: str | Path | None, env: Mapping[str, str] | None = None
                   ) -> StationSigner | None:
    """The signer of ``path``, else of ``$HARNESS_SIGNING_KEY``, else None (runs unsigned)."""
    if path is not None and str(path) != "":
        return load_signer(path)
    from_env = (os.environ if env is None else env).get(ENV_KEY, "")
    return load_signer(from_env, field_name=f"${ENV_KEY}") if from_env else None


def load_public_keys(folder: str | Path) -> dict[str, Ed25519PublicKey]:
    """``{station id: public key}`` from every ``<station id>.pub`` in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("not a folder; allowed: a folder of <station id>.pub public keys",
                          source=str(folder), field="--keys")
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(folder.glob(f"*{PUBLIC_SUFFIX}")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError("not a PEM Ed25519 public key; allowed: a .pub file made by "
                              "`harness station keygen`", source=str(path), field="--keys")
        keys[path.name[:-len(PUBLIC_SUFFIX)]] = key
    if not keys:
        raise ConfigError("no <station id>.pub public key in this folder", source=str(folder),
                          field="--keys")
    return keys


def signature_problem(link: StoredRun, keys: Mapping[str, Ed25519PublicKey]) -> str:
    """What is wrong with a stored run's signature against its station's public key, ``""``
    when it is the station's valid signature of the run's record hash."""
    if not link.signature:
        return "unsigned (stored without the station's key)"
    key = keys.get(link.station)
    if key is None:
        return f"no public key {link.station}{PUBLIC_SUFFIX} to check its signature"
    if link.signing_key != fingerprint(key):
        return (f"signed by key {link.signing_key[:16]}…, not the station's key "
                f"{fingerprint(key)[:16]}…")
    try:
        key.verify(base64.b64decode(link.signature, validate=True),
                   link.record_hash.encode("ascii"))
    except (InvalidSignature, binascii.Error, ValueError):
        return "its signature does not match its content (edited after it was signed)"
    return ""


def signature_check(keys: Mapping[str, Ed25519PublicKey]) -> RunCheck:
    """A :data:`RunCheck` for :meth:`RecordStore.verify`: each run must carry its station's
    valid signature (an unsigned run is a problem too)."""
    def check(link: StoredRun, _record: RunRecord) -> list[str]:
        problem = signature_problem(link, keys)
        return [f"station {link.station}: run {link.run_id}: {problem}"] if problem else []
    return check


__all__ = ["ENV_KEY", "SETTING", "KeyPair", "StationSigner", "fingerprint", "generate_keys",
           "load_public_keys", "load_signer", "resolve_signer", "signature_check",
           "signature_problem", "station_key_path"]
