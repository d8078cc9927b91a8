"""Driver registry: decorator registration, name clashes, third-party entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from harness.registry import driver_class, register_driver, registered_drivers


def test_builtin_fakes_registered_for_every_kind() -> None:
    for kind in ("camera", "light", "power", "meter", "focus", "chart"):
        assert "fake" in registered_drivers(kind)
        assert driver_class(kind, "fake").kind == kind


def test_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError, match="unknown device kind 'laser'"):
        register_driver("laser", "x")


def test_name_clash_rejected() -> None:
    class Settings(BaseModel):
        pass

    with pytest.raises(ValueError, match="light driver 'fake' is already registered"):
        @register_driver("light", "fake")
        class Other:
            pass

        Other.Settings = Settings  # pragma: no cover


def test_driver_without_settings_rejected() -> None:
    with pytest.raises(TypeError, match="has no Settings model"):
        @register_driver("light", "no-settings-xyz")
        class NoSettings:
            pass


def test_third_party_driver_through_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_light.py").write_text(textwrap.dedent("""
        from pydantic import BaseModel, ConfigDict
        from harness.devices.fakes import FakeLight
        from harness.registry import register_driver

        class AcmeSettings(BaseModel):
            model_config = ConfigDict(extra="forbid")
            serial: str = "ACME-1"
            fail_on: list = []
            record_to: str | None = None
            open_delay_s: float = 0.0
            port: str = "/dev/null"

        @register_driver("light", "acme")
        class AcmeLight(FakeLight):
            Settings = AcmeSettings
    """))
    dist = site / "acme_light-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-light\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[harness.drivers]\nacme = acme_light\n")
    station = tmp_path / "s.yaml"
    station.write_text(f"id: ep\nlock_dir: {tmp_path}\nlight: {{driver: acme, port: /dev/ttyX}}\n")
    script = textwrap.dedent(f"""
        from harness.station import Station
        with Station.load({str(station)!r}) as s:
            print(type(s.device("light")).__name__, s.device("light").settings.port)
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "AcmeLight /dev/ttyX"
