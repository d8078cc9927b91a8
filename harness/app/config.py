"""What ``harness serve`` was started with: the station, the spec, where runs go, who may post.

:func:`load_config` validates the station file and the limit spec once at start (a bad file is
a one-line :class:`~harness.errors.ConfigError`, exit 2, before anything listens) and refuses
to listen beyond the loopback interface without a token: a kiosk on the shop-floor network
must not accept a Start or an Abort from anyone who can reach its port.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.limits import load_limits
from harness.station.schema import load_station_file

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AppConfig:
    """The station app's settings (see the module docstring); paths are absolute."""

    station: Path
    limits: Path
    station_id: str
    slots: tuple[str, ...] = ()
    records: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    """Bearer token every POST must carry (None: none needed, loopback only)."""
    evidence_dir: Path = Path("out/evidence")
    tests: tuple[str, ...] = ("tests_hil",)
    rootdir: Path = Path(".")
    python: str = field(default=sys.executable)
    abort_timeout_s: float = 20.0
    """SIGTERM, then SIGKILL after this long (the watchdog then makes the station safe)."""
    settle_s: float = 15.0
    """How long after the child exits to wait for its journals' ``run_end`` (watchdog)."""
    keepalive_s: float = 15.0
    """Interval of the event stream's keep-alive comments."""
    history_size: int = 20
    """How many of the station's last runs ``/api/history`` lists."""
    label_timeout_s: float = 60.0
    reports: Path = Path("out/report")
    """Where each run's Allure report goes (``<reports>/<run id>/index.html``)."""
    allure_results: Path = Path("out/allure-results")
    """Where each run's Allure results go (``<allure_results>/<run id>``)."""
    build_reports: bool = True
    """Build each kiosk run's Allure report after its verdict (``--no-report``: don't)."""


def read_token(path: Path) -> str:
    """The token in ``path`` (first line, stripped); a ConfigError if missing or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such token file", source=str(path), field="--token-file") from None
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot read the token file: {exc}", source=str(path),
                          field="--token-file") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < 16:
        raise ConfigError("the token file is empty or its token shorter than 16 characters",
                          source=str(path), field="--token-file")
    return token


def load_config(*, station: Path, limits: Path, records: str | None = None,
                host: str = "127.0.0.1", port: int = 8080, token_file: Path | None = None,
                evidence_dir: Path = Path("out/evidence"), tests: Sequence[str] = ("tests_hil",),
                rootdir: Path | None = None, reports: Path | None = None,
                allure_results: Path | None = None, build_reports: bool = True) -> AppConfig:
    """Validate the inputs of ``harness serve`` and resolve its paths (one-line errors).

    Relative paths are taken from ``rootdir`` (default: the working folder); the report and
    Allure results folders default to ``report`` and ``allure-results`` beside the evidence
    folder (``out/evidence`` -> ``out/report``, as ``harness report`` and ``make qualify``)."""
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is out of range; allowed: 1..65535", field="--port")
    token = read_token(token_file) if token_file is not None else None
    if token is None and not is_loopback(host):
        raise ConfigError(f"listening on {host} (not loopback) needs --token-file: every "
                          "Start, Abort and prompt answer must then carry the token",
                          field="--host")
    station_config = load_station_file(station)
    load_limits(limits)
    root = (rootdir or Path.cwd()).resolve()
    if not root.is_dir():
        raise ConfigError("no such folder", source=str(root), field="--rootdir")
    resolved_tests = tuple(str(t if Path(t).is_absolute() else root / t) for t in tests)
    for test in resolved_tests:
        if not Path(test.split("::")[0]).exists():
            raise ConfigError("no such test file or folder", source=test, field="--tests")
    evidence = (evidence_dir if evidence_dir.is_absolute() else root / evidence_dir).resolve()

    def beside(given: Path | None, name: str) -> Path:
        path = evidence.parent / name if given is None else given
        return (path if path.is_absolute() else root / path).resolve()

    if records and "://" not in records:
        records = str(root / Path(records).expanduser())  # the child (cwd = root) agrees
    return AppConfig(station=station.resolve(), limits=limits.resolve(),
                     station_id=station_config.id, slots=tuple(station_config.slots),
                     records=records, host=host, port=port, token=token,
                     evidence_dir=evidence, tests=resolved_tests, rootdir=root,
                     label_timeout_s=station_config.settings.label_timeout_s,
                     reports=beside(reports, "report"),
                     allure_results=beside(allure_results, "allure-results"),
                     build_reports=build_reports)


__all__ = ["LOOPBACK_NAMES", "AppConfig", "is_loopback", "load_config", "read_token"]
