"""Several modules on one station (harness.run.slots): the four-up simulated station captures
every slot under one light, making each shared change once; a slot whose camera fails stops
alone; a fault of the shared light reaches every slot."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import yaml

from harness.errors import CameraError, DeviceError
from harness.inputs.captureset import CaptureSet
from harness.limits import load_limits
from harness.run.slots import SlotCapture
from harness.station.station import Station

ROOT = Path(__file__).resolve().parents[1]
FOUR_UP = ROOT / "stations" / "sim-4up.yaml"
SPEC = load_limits(ROOT / "tests_hil" / "limits" / "cm12.yaml")


def station_file(tmp_path: Path, *, slots: tuple[str, ...] = ("A", "B", "C", "D"),
                 camera_faults: dict[str, dict[str, int]] | None = None,
                 light_faults: list[dict[str, object]] | None = None,
                 modules: dict[str, str] | None = None) -> Path:
    """A copy of the four-up station (its own lock folder) with some slots, faults scripted,
    ``modules``: another module for some slots (at 640 x 480)."""
    data = yaml.safe_load(FOUR_UP.read_text())
    kept = {k: v for k, v in data["slots"].items() if k in slots}
    for slot, module in (modules or {}).items():
        kept[slot]["camera"].update(module=f"../fixtures/modules/{module}.yaml",
                                    sensor_size=[640, 480])
    for slot, fault in (camera_faults or {}).items():
        kept[slot]["camera"] = {**kept[slot]["camera"], "faults": fault}
    for own in kept.values():
        own["camera"]["module"] = str((FOUR_UP.parent / own["camera"]["module"]).resolve())
    data.update(slots=kept, lock_dir=str(tmp_path), id=f"four-up-{len(slots)}")
    if light_faults:
        data["simulators"]["light"]["faults"] = light_faults
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "st.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.with_name("st.light-cal.json").write_bytes(
        FOUR_UP.with_name("sim-4up.light-cal.json").read_bytes())
    return path


def capture(path: Path, out: Path, *names: str) -> tuple[SlotCapture, list[dict[str, object]]]:
    with Station.load(path) as station:
        slots = SlotCapture(station, out, conditions=SPEC.conditions, timeout_s=60)
        results = [dict(slots.sequence(name)) for name in names]
    return slots, results


def test_four_slots_share_every_light_change_with_a_one_slot_run(tmp_path: Path) -> None:
    four, results = capture(station_file(tmp_path / "four"), tmp_path / "out4", "flat_stack")
    one, _ = capture(station_file(tmp_path / "one", slots=("A",)), tmp_path / "out1",
                     "flat_stack")
    assert list(four.sessions) == ["A", "B", "C", "D"]
    [flat] = results
    for slot in "ABCD":
        cs = flat[slot]
        assert isinstance(cs, CaptureSet), cs
        assert len(cs.records(role="flat")) == SPEC.condition("flat_stack")["frames"]
        assert cs.manifest.camera["serial"].startswith(f"SIM4-{slot}")
    # the same shared changes (light, chart, settles), in the same order, as one slot made
    assert four.rendezvous.log == one.rendezvous.log
    assert any(re.match(r"light\.set_level", c) for c in four.rendezvous.log)
    assert four.rendezvous.changes_made == one.rendezvous.changes_made
    # each slot chose its own exposure for its own module (hot-cluster, colour-cast differ)
    exposures = {s: flat[s].records(role="flat")[0].exposure_us for s in "ABCD"}
    assert len(set(exposures.values())) > 1, exposures


def test_a_slot_whose_camera_fails_stops_alone(tmp_path: Path) -> None:
    slots, [flat] = capture(station_file(tmp_path, camera_faults={"C": {"disconnect_after": 2}}),
                            tmp_path / "out", "flat_stack")
    assert isinstance(flat["C"], CameraError), flat["C"]
    assert all(isinstance(flat[s], CaptureSet) for s in "ABD")
    assert slots.live == ["A", "B", "D"] and "C" in slots.errors


def test_a_fault_of_the_shared_light_reaches_every_slot(tmp_path: Path) -> None:
    path = station_file(tmp_path, light_faults=[{"kind": "error", "after": 12}])
    _, [flat] = capture(path, tmp_path / "out", "flat_stack")
    for slot in "ABCD":
        assert isinstance(flat[slot], DeviceError), (slot, flat[slot])
        assert "light" in str(flat[slot])


def test_slots_in_the_station_file_and_their_mistakes(tmp_path: Path) -> None:
    """Each slot's own devices become ``<kind>.<slot>``; a slot's own focus replaces the
    shared one for it only; mistakes are one line naming the field."""
    import pytest

    from harness.errors import ConfigError
    from harness.station.schema import load_station_file

    head = "id: st\nlight: {driver: fake}\nfocus: {driver: fake}\n"
    good = tmp_path / "good.yaml"
    good.write_text(head + "slots:\n  A: {camera: {driver: fake, serial: SA}, focus: {driver: "
                    "fake}}\n  B: {camera: {driver: fake, serial: SB}}\n")
    config = load_station_file(good)
    assert config.slots == ("A", "B")
    assert {"camera.A", "camera.B", "focus", "focus.A", "light"} <= set(config.roles())
    from harness.capture.shared import Rendezvous, SharedDevice
    from harness.run.slots import SlotStation

    with Station(config, lock_dir=tmp_path) as station:
        rv = Rendezvous(["A", "B"])
        locks = {r: threading.RLock() for r in station.devices}
        a, b = SlotStation(station, "A", rv, locks), SlotStation(station, "B", rv, locks)
        assert a.device("focus") is station.device("focus.A")        # A's own
        assert isinstance(b.device("focus"), SharedDevice)            # B shares the station's
        assert a.camera().identity().serial == "SA" and b.camera().identity().serial == "SB"
        assert not a.has("focus.A") and a.has("light")
    for body, words in [
        ("camera: {driver: fake}\nslots:\n  A: {camera: {driver: fake}}\n", "camera:"),
        ("slots:\n  A: {camera: {driver: fake}, chart: {driver: fake}}\n", "slots.A.chart"),
        ("slots:\n  A: {power: {driver: fake}}\n", "needs its camera"),
        ("slots:\n  'a b': {camera: {driver: fake}}\n", "slot name"),
        ("slots: {}\n", "no slot"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(head + body)
        with pytest.raises(ConfigError) as err:
            load_station_file(bad)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
