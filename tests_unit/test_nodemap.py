"""NodeMapFeatures against a tiny GenICam XML node map of our own on a Python port.

The node map is real GenApi (``genicam.genapi.NodeMap``), so range, increment, enum, access and
availability checks are GenApi's; the tests check that our layer reads them correctly and turns
GenApi's exceptions into one-line FeatureError messages (docs/standards.md#genapi-node-map-on-a-python-port).
"""

from __future__ import annotations

import struct
import threading
import time

import genicam.genapi as ga
import pytest

from harness.devices.camera.nodemap import NodeMapFeatures, diff_snapshots
from harness.errors import CameraError, FeatureError

_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n<RegisterDescription '
         'xmlns="http://www.genicam.org/GenApi/Version_1_1" ModelName="Tiny" VendorName="Harness" '
         'StandardNameSpace="None" SchemaMajorVersion="1" SchemaMinorVersion="1" '
         'SchemaSubMinorVersion="0" MajorVersion="1" MinorVersion="0" SubMinorVersion="0" '
         'ProductGuid="6a2f0a54-7c1e-4c5e-9a11-000000000001" '
         'VersionGuid="6a2f0a54-7c1e-4c5e-9a11-000000000002">\n')


def _reg(name: str, address: int, length: int = 4, access: str = "RW", cache: bool = True,
         kind: str = "IntReg") -> str:
    extra = "" if cache else "<Cachable>NoCache</Cachable>"
    sign = "<Sign>Unsigned</Sign>" if kind == "IntReg" else ""
    return (f'<{kind} Name="{name}"><Address>{address:#x}</Address><Length>{length}</Length>'
            f'<AccessMode>{access}</AccessMode><pPort>Device</pPort>{extra}{sign}'
            f'<Endianess>LittleEndian</Endianess></{kind}>\n')


FEATURES = ["DeviceVendorName", "Width", "ExposureTime", "Gain", "PixelFormat", "TriggerMode",
            "TriggerSoftware", "ReverseX", "TLParamsLocked", "DeviceTemperature"]

XML = (_HEAD
       + '<Category Name="Root" NameSpace="Standard">'
       + "".join(f"<pFeature>{f}</pFeature>" for f in FEATURES) + "</Category>\n"
       + '<StringReg Name="DeviceVendorName" NameSpace="Standard"><Address>0x0</Address>'
         '<Length>32</Length><AccessMode>RO</AccessMode><pPort>Device</pPort></StringReg>\n'
       + '<Integer Name="TLParamsLocked" NameSpace="Standard"><pValue>Locked_Val</pValue>'
         '<Min>0</Min><Max>1</Max></Integer>\n' + _reg("Locked_Val", 0x150)
       + '<Integer Name="Width" NameSpace="Standard"><pIsLocked>TLParamsLocked</pIsLocked>'
         '<pValue>Width_Val</pValue><Min>16</Min><Max>1024</Max><Inc>8</Inc></Integer>\n'
       + _reg("Width_Val", 0x100)
       + '<Float Name="ExposureTime" NameSpace="Standard"><pValue>Exp_Val</pValue>'
         '<Min>10</Min><Max>1000000</Max><Unit>us</Unit></Float>\n'
       + _reg("Exp_Val", 0x120, 8, kind="FloatReg")
       + '<Converter Name="Gain" NameSpace="Standard"><FormulaTo>FROM*10</FormulaTo>'
         '<FormulaFrom>TO/10</FormulaFrom><pValue>GainRaw</pValue><Unit>dB</Unit>'
         '<Slope>Increasing</Slope></Converter>\n'
       + '<Integer Name="GainRaw"><pValue>Gain_Val</pValue><Min>0</Min><Max>480</Max></Integer>\n'
       + _reg("Gain_Val", 0x128)
       + '<Enumeration Name="PixelFormat" NameSpace="Standard"><pIsLocked>TLParamsLocked'
         '</pIsLocked><EnumEntry Name="Mono8"><Value>17301505</Value></EnumEntry>'
         '<EnumEntry Name="Mono12"><Value>17825797</Value></EnumEntry>'
         '<pValue>PF_Val</pValue></Enumeration>\n' + _reg("PF_Val", 0x118)
       + '<Enumeration Name="TriggerMode" NameSpace="Standard"><EnumEntry Name="Off"><Value>0'
         '</Value></EnumEntry><EnumEntry Name="On"><Value>1</Value></EnumEntry>'
         '<pValue>TM_Val</pValue></Enumeration>\n' + _reg("TM_Val", 0x12C)
       + '<Command Name="TriggerSoftware" NameSpace="Standard"><pIsAvailable>TM_Val'
         '</pIsAvailable><pValue>TS_Val</pValue><CommandValue>1</CommandValue></Command>\n'
       + _reg("TS_Val", 0x130, cache=False)
       + '<Boolean Name="ReverseX" NameSpace="Standard"><pValue>RX_Val</pValue></Boolean>\n'
       + _reg("RX_Val", 0x140)
       + '<Float Name="DeviceTemperature" NameSpace="Standard"><pValue>Temp_Val</pValue>'
         '<Unit>C</Unit></Float>\n' + _reg("Temp_Val", 0x160, access="RO", cache=False,
                                           kind="FloatReg")
       + '<Port Name="Device" NameSpace="Standard"/>\n</RegisterDescription>\n')


class Port(ga.AbstractPort):
    """Little-endian register memory; ``writes`` records every write (address, bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.mem = bytearray(0x200)
        self.mem[0:7] = b"Harness"
        self.writes: list[tuple[int, bytes]] = []
        self.latency_s = 0.0
        self.poke("<I", 0x100, 640)
        self.poke("<d", 0x120, 1000.0)
        self.poke("<I", 0x118, 17301505)
        self.poke("<f", 0x160, 36.5)

    def poke(self, fmt: str, address: int, value: float) -> None:
        struct.pack_into(fmt, self.mem, address, value)

    def get_access_mode(self) -> ga.EAccessMode:
        return ga.EAccessMode.RW

    def read(self, address: int, length: int) -> bytes:
        if self.latency_s:
            time.sleep(self.latency_s)  # a transport round trip: releases the GIL
        return bytes(self.mem[address:address + length])

    def write(self, address: int, value: bytes) -> None:
        self.writes.append((address, bytes(value)))
        self.mem[address:address + len(value)] = value


@pytest.fixture()
def port() -> Port:
    return Port()


@pytest.fixture()
def features(port: Port) -> NodeMapFeatures:
    nm = ga.NodeMap()
    nm.load_xml_from_string(XML)
    assert not nm.connect(port, "NotThePort")  # a wrong port name fails silently: check it
    assert nm.connect(port, "Device")
    return NodeMapFeatures(nm, "tinycam")


def test_names_are_features_only(features: NodeMapFeatures) -> None:
    names = features.names()
    assert set(FEATURES) <= set(names)
    assert "Width_Val" not in names and "Root" not in names and "GainRaw" not in names


def test_typed_get_and_set_round_trip(features: NodeMapFeatures, port: Port) -> None:
    assert features.get("Width") == 640 and isinstance(features.get("Width"), int)
    assert features.get("DeviceVendorName") == "Harness"
    features.set("Width", 800)
    assert struct.unpack_from("<I", port.mem, 0x100)[0] == 800
    features.set("ExposureTime", 12345.5)
    assert features.get("ExposureTime") == 12345.5
    features.set("Gain", 12.3)  # Converter: 12.3 dB -> GainRaw 123
    assert struct.unpack_from("<I", port.mem, 0x128)[0] == 123
    assert features.get("Gain") == pytest.approx(12.3)
    features.set("PixelFormat", "Mono12")
    assert features.get("PixelFormat") == "Mono12"
    features.set("PixelFormat", 17301505)  # by PFNC value
    assert features.get("PixelFormat") == "Mono8"
    features.set("ReverseX", "true")
    assert features.get("ReverseX") is True
    features.set("Width", "808")  # station files may carry numbers as strings
    assert features.get("Width") == 808


def test_info_reports_range_unit_choices(features: NodeMapFeatures) -> None:
    w = features.info("Width")
    assert (w.type, w.minimum, w.maximum, w.increment, w.writable) == ("int", 16, 1024, 8, True)
    e = features.info("ExposureTime")
    assert (e.type, e.unit, e.minimum, e.maximum) == ("float", "us", 10.0, 1e6)
    pf = features.info("PixelFormat")
    assert pf.type == "enum" and pf.choices == ("Mono8", "Mono12")
    v = features.info("DeviceVendorName")
    assert v.readable and not v.writable and v.value == "Harness"
    ts = features.info("TriggerSoftware")
    assert ts.type == "command" and not ts.writable  # not available while TriggerMode is Off


def test_unknown_feature_suggests_close_names(features: NodeMapFeatures) -> None:
    with pytest.raises(FeatureError) as exc:
        features.get("ExposureTme")
    msg = str(exc.value)
    assert msg.startswith("tinycam: unknown feature 'ExposureTme'") and "ExposureTime" in msg
    assert "\n" not in msg
    with pytest.raises(FeatureError, match="Width"):
        features.set("width", 8)


def test_out_of_range_names_min_max_increment(features: NodeMapFeatures, port: Port) -> None:
    before = bytes(port.mem)
    with pytest.raises(FeatureError) as exc:
        features.set("Width", 4096)
    assert str(exc.value) == ("tinycam: Width=4096 is out of range (min 16, max 1024, "
                              "increment 8)")
    with pytest.raises(FeatureError, match=r"Width=641 is out of range .*increment 8"):
        features.set("Width", 641)
    with pytest.raises(FeatureError, match=r"Gain=60 is out of range \(min 0, max 48"):
        features.set("Gain", 60.0)
    with pytest.raises(FeatureError, match=r"ExposureTime=1 is out of range.*increment any"):
        features.set("ExposureTime", 1)
    assert bytes(port.mem) == before  # nothing written


def test_bad_values(features: NodeMapFeatures) -> None:
    with pytest.raises(FeatureError, match=r"PixelFormat='Mono16' is not an allowed entry; "
                                           r"allowed: Mono8, Mono12"):
        features.set("PixelFormat", "Mono16")
    with pytest.raises(FeatureError, match=r"Width=12\.5 is not an integer"):
        features.set("Width", 12.5)
    with pytest.raises(FeatureError, match="ExposureTime='fast' is not a finite number"):
        features.set("ExposureTime", "fast")
    with pytest.raises(FeatureError, match="ReverseX='maybe' is not true or false"):
        features.set("ReverseX", "maybe")


def test_not_writable_now(features: NodeMapFeatures, port: Port) -> None:
    with pytest.raises(FeatureError, match="DeviceVendorName is not writable now"):
        features.set("DeviceVendorName", "x")
    features.set("TLParamsLocked", 1)  # what a camera does while streaming
    with pytest.raises(FeatureError, match=r"tinycam: Width is not writable now \(read-only"):
        features.set("Width", 320)
    assert not features.info("PixelFormat").writable
    features.set("TLParamsLocked", 0)
    features.set("Width", 320)


def test_command_availability_and_execute(features: NodeMapFeatures, port: Port) -> None:
    with pytest.raises(FeatureError, match="TriggerSoftware cannot be executed now"):
        features.execute("TriggerSoftware")
    features.set("TriggerMode", "On")
    features.execute("TriggerSoftware")
    features.set("TriggerSoftware", True)  # set() on a command executes it
    assert [w for w in port.writes if w[0] == 0x130] == [(0x130, b"\x01\0\0\0")] * 2
    with pytest.raises(FeatureError, match="TriggerSoftware is a command"):
        features.get("TriggerSoftware")
    with pytest.raises(FeatureError, match="Width is a int feature, not a command"):
        features.execute("Width")


def test_live_value_and_error_is_a_camera_error(features: NodeMapFeatures, port: Port) -> None:
    assert features.get("DeviceTemperature") == 36.5
    port.poke("<f", 0x160, 41.0)  # NoCache: visible at once
    assert features.get("DeviceTemperature") == 41.0
    with pytest.raises(CameraError):  # a FeatureError is an ERROR outcome, never a FAIL
        features.get("Nope")


def test_snapshot_and_diff(features: NodeMapFeatures) -> None:
    before = features.snapshot()
    assert before["Width"] == 640 and before["PixelFormat"] == "Mono8"
    assert "TriggerSoftware" not in before
    features.set("TriggerMode", "On")
    features.set("ExposureTime", 2000.0)
    after = features.snapshot()
    assert diff_snapshots(before, after) == {"ExposureTime": (1000.0, 2000.0),
                                             "TriggerMode": ("Off", "On")}
    assert diff_snapshots(before, before) == {}
    assert diff_snapshots({"A": 1}, {"B": 2}) == {"A": (1, None), "B": (None, 2)}
    assert diff_snapshots({"F": 0.1 + 0.2}, {"F": 0.3}) == {}


def test_threads_share_the_node_map_without_deadlock(features: NodeMapFeatures,
                                                      port: Port) -> None:
    """Two threads on one node map deadlock without GENAPI_LOCK (docs/standards.md#harvesters-and-genapi-traps, trap 4).

    The port's latency lets the GIL change hands inside a port read, the deadlock's trigger.
    Checked: with GENAPI_LOCK replaced by a no-op this test hangs the process (the GIL is held,
    so not even the join timeout fires); with the lock it takes well under a second.
    """
    errors: list[BaseException] = []
    port.latency_s = 1e-5

    def work(k: int) -> None:
        try:
            for i in range(300):
                features.set("ExposureTime", 100.0 + k * 1000 + i)
                features.get("DeviceTemperature")  # NoCache: a port read every time
                features.snapshot() if i % 100 == 0 else features.get("Gain")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "node-map threads deadlocked"
    assert errors == []
