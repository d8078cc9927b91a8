"""Camera bandwidth on a shared link (harness/devices/camera/bandwidth.py) and the stream
statistics, first as arithmetic, then against the GenTL producer simulator ``viky.cti``.

Ground truth for the GVSP arithmetic is worked by hand in each test from the header sizes of
GigE Vision 2.x, RFC 791/768 and IEEE 802.3 (docs/standards.md#genicam-gentl-and-sfnc); the
comparisons are exact (integers) or to 1e-12 relative (one float division). viky has no
GigE Vision features (docs/standards.md#the-viky-test-producer): its tests assert the documented
fallback (``PayloadSize`` x ``AcquisitionFrameRate``, no GVSP overhead, only the GenTL stream
info counters), with values read independently through harvesters' own node map.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import genicam
import genicam.genapi as ga
import genicam.gentl as gt
import pytest

from harness.devices.camera.bandwidth import (
    STREAM_COUNTERS,
    CameraThroughput,
    check_shared_link,
    check_station_cameras,
    gvsp_wire_bytes,
    read_throughput,
    statistics_delta,
    stream_statistics,
    stream_throughput,
)
from harness.devices.camera.genicam import GenICamCamera, GenICamSettings
from harness.errors import ConfigError, FeatureError
from harness.registry import DriverContext

VIKY = os.path.join(os.path.dirname(genicam.__file__), "viky.cti")

# 2448 x 2048 Mono8 (a 5 MP GigE camera) in 1500-byte packets, worked by hand:
# data per packet 1500 - (20 IP + 8 UDP + 8 GVSP) = 1464; 5013504 = 3424 * 1464 + 768;
# wire = 3424 * (1500 + 38) + (36 + 768 + 38) + leader (36 + 36 + 38) + trailer (max(44, 46) + 38)
P5MP = 2448 * 2048
W5MP = 3424 * 1538 + 842 + 110 + 84
N5MP = 3425 + 2


# -- GVSP arithmetic -----------------------------------------------------------------------------

def test_gvsp_wire_bytes_standard_and_extended_id() -> None:
    """Exact integers against the hand-worked frames (the module docstring's header sizes)."""
    assert W5MP == 5_267_148
    assert gvsp_wire_bytes(P5MP, 1500) == (W5MP, N5MP)
    # extended ID: GVSP header 20, data 1452; 5013504 = 3452 * 1452 + 1200
    wire_ext = 3452 * 1538 + (48 + 1200 + 38) + (48 + 36 + 38) + (48 + 8 + 38)
    assert gvsp_wire_bytes(P5MP, 1500, extended_id=True) == (wire_ext, 3453 + 2)
    # a whole number of packets: no short last packet
    assert gvsp_wire_bytes(1464 * 10, 1500) == (10 * 1538 + 110 + 84, 12)
    # an empty frame is still a leader and a trailer; a 1-byte last packet is padded to 46
    assert gvsp_wire_bytes(0, 1500) == (110 + 84, 2)
    assert gvsp_wire_bytes(1465, 1500) == (1538 + (46 + 38) + 110 + 84, 4)
    # jumbo frames: overhead per packet (74 bytes) over 8964 data bytes
    wire, _ = gvsp_wire_bytes(P5MP, 9000)
    assert math.isclose(wire / P5MP, 1 + 74 / 8964, rel_tol=2e-4)


@pytest.mark.parametrize(("payload", "size", "field"), [
    (-1, 1500, "PayloadSize"), (1.5, 1500, "PayloadSize"), (True, 1500, "PayloadSize"),
    (1000, 36, "GevSCPSPacketSize"), (1000, 0, "GevSCPSPacketSize"),
    (1000, 1500.5, "GevSCPSPacketSize"),
])
def test_gvsp_bad_inputs_are_one_line(payload: Any, size: Any, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        gvsp_wire_bytes(payload, size)
    assert exc.value.field == field and "\n" not in str(exc.value)


def test_stream_throughput_without_and_with_gvsp() -> None:
    """Not GigE Vision: exactly P * f. GigE Vision: W * f (105342960 B/s at 20 Hz)."""
    plain = stream_throughput(P5MP, 20.0)
    assert plain.bytes_per_s == P5MP * 20 and plain.packet_size is None
    gev = stream_throughput(P5MP, 20.0, packet_size=1500)
    assert gev.bytes_per_s == 105_342_960
    assert math.isclose(gev.mbit_per_s, 842.74368, rel_tol=1e-12)
    assert (gev.packets_per_frame, gev.wire_bytes_per_frame) == (N5MP, W5MP)
    assert not gev.delay_limited and gev.as_dict()["mbit_per_s"] == gev.mbit_per_s
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ConfigError, match="frame_rate_hz"):
            stream_throughput(P5MP, bad)


def test_inter_packet_delay_caps_the_stream() -> None:
    """10 us after each of the 3427 packets on a 125 MB/s line: a frame takes
    W / 125e6 + 3427e-5 s, so at most W / that bytes/s (68.93 MB/s) of the 105.3 MB/s asked."""
    frame_s = W5MP / 125e6 + N5MP * 10e-6
    limited = stream_throughput(P5MP, 20.0, packet_size=1500, packet_delay_s=10e-6,
                                link_bytes_per_s=125e6)
    assert limited.delay_limited
    assert math.isclose(limited.bytes_per_s, W5MP / frame_s, rel_tol=1e-12)
    slow = stream_throughput(P5MP, 5.0, packet_size=1500, packet_delay_s=10e-6,
                             link_bytes_per_s=125e6)
    assert not slow.delay_limited and slow.bytes_per_s == W5MP * 5
    # line rate unknown: the bound W / (n d) is larger than the true cap (the safe side)
    unknown = stream_throughput(P5MP, 20.0, packet_size=1500, packet_delay_s=10e-6)
    assert not unknown.delay_limited and unknown.bytes_per_s == W5MP * 20  # bound 153.7 MB/s
    bound = stream_throughput(P5MP, 20.0, packet_size=1500, packet_delay_s=30e-6)
    assert bound.delay_limited
    assert math.isclose(bound.bytes_per_s, W5MP / (N5MP * 30e-6), rel_tol=1e-12)
    assert bound.bytes_per_s > W5MP / (W5MP / 125e6 + N5MP * 30e-6)
    with pytest.raises(ConfigError, match="link_bytes_per_s"):
        stream_throughput(P5MP, 20.0, packet_size=1500, packet_delay_s=1e-6,
                          link_bytes_per_s=-1.0)


# -- reading the features --------------------------------------------------------------------------

class Features:
    """A node map of fixed values; ``None`` is a feature that exists but cannot be read."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def is_available(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> Any:
        if self.values.get(name) is None:
            raise FeatureError(f"{name} is not readable now")
        return self.values[name]


GEV = {"PayloadSize": P5MP, "AcquisitionFrameRate": 20.0, "GevSCPSPacketSize": 1500}


def test_limit_is_used_when_its_mode_is_on_or_absent() -> None:
    on = read_throughput(Features(**GEV, DeviceLinkThroughputLimit=50_000_000,
                                  DeviceLinkThroughputLimitMode="On"))
    assert (on.bytes_per_s, on.source) == (50e6, "DeviceLinkThroughputLimit")
    no_mode = read_throughput(Features(**GEV, DeviceLinkThroughputLimit=40_000_000))
    assert no_mode.bytes_per_s == 40e6
    off = read_throughput(Features(**GEV, DeviceLinkThroughputLimit=50_000_000,
                                   DeviceLinkThroughputLimitMode="Off"))
    assert off.bytes_per_s == 105_342_960 and off.source.startswith("PayloadSize x Acq")
    unreadable_mode = read_throughput(Features(**GEV, DeviceLinkThroughputLimit=50_000_000,
                                               DeviceLinkThroughputLimitMode=None))
    assert unreadable_mode.bytes_per_s == 105_342_960


def test_frame_rate_order_and_gige_features() -> None:
    """ResultingFrameRate wins over AcquisitionFrameRate; GevSCPD is converted with the tick
    frequency and the line rate comes from GevLinkSpeed (Mbit/s) or DeviceLinkSpeed (B/s)."""
    cap = W5MP / (W5MP / 125e6 + N5MP * 10e-6)  # 68.93 MB/s: 20 Hz (105.3 MB/s) is capped
    gige = {**GEV, "AcquisitionFrameRate": 30.0, "ResultingFrameRate": 20.0, "GevSCPD": 10_000,
            "GevTimestampTickFrequency": 1_000_000_000}
    got = read_throughput(Features(**gige, GevLinkSpeed=1000))
    assert got.frame_rate_hz == 20.0 and got.source.startswith("PayloadSize x ResultingFrameRate")
    assert got.packet_delay_s == 10e-6 and got.delay_limited
    assert math.isclose(got.bytes_per_s, cap, rel_tol=1e-12)
    device_speed = read_throughput(Features(**gige, DeviceLinkSpeed=125_000_000))
    assert math.isclose(device_speed.bytes_per_s, cap, rel_tol=1e-12)
    slow = read_throughput(Features(**{**gige, "ResultingFrameRate": 10.0}, GevLinkSpeed=1000))
    assert not slow.delay_limited and slow.bytes_per_s == W5MP * 10
    # no tick frequency: the delay cannot be converted and is ignored (the larger figure)
    ignored = read_throughput(Features(**GEV, GevSCPD=10_000))
    assert ignored.packet_delay_s is None and ignored.bytes_per_s == W5MP * 20
    ext = read_throughput(Features(**GEV, GevGVSPExtendedIDMode="On"))
    assert ext.wire_bytes_per_frame == gvsp_wire_bytes(P5MP, 1500, extended_id=True)[0]


def test_unknown_throughput_names_the_missing_features() -> None:
    f = Features(PayloadSize=1000, AcquisitionFrameRate=30.0, AcquisitionFrameRateEnable=False)
    with pytest.raises(ConfigError) as exc:
        read_throughput(f, device="cam0 [X s/n 1]", field="cam0.transport.link_throughput_limit")
    text = str(exc.value)
    assert text.startswith("cam0.transport.link_throughput_limit: cam0 [X s/n 1]:")
    assert "ResultingFrameRate" in text and "DeviceLinkThroughputLimit" in text
    assert "PayloadSize" not in text.split("no readable")[1] and "\n" not in text
    with pytest.raises(ConfigError, match=r"no readable PayloadSize;"):
        read_throughput(Features(PayloadSize=None, ResultingFrameRate=5.0))
    enabled = read_throughput(Features(PayloadSize=1000, AcquisitionFrameRate=30.0,
                                       AcquisitionFrameRateEnable=True))
    assert enabled.bytes_per_s == 30_000


# -- the shared-link check -------------------------------------------------------------------------

def _tp(mbit: float) -> CameraThroughput:
    return CameraThroughput(mbit * 1e6 / 8, "test")


def test_shared_link_refuses_in_one_line_naming_the_cameras() -> None:
    cams = {"slot1": _tp(400.0), "slot2": _tp(300.0), "slot3": _tp(200.0)}
    check_shared_link(cams, 1000e6 / 8)  # 900 Mbit/s is exactly 90 %: allowed
    check_shared_link({}, 1.0)
    with pytest.raises(ConfigError) as exc:
        check_shared_link({**cams, "slot4": _tp(0.1)}, 1000e6 / 8)
    text = str(exc.value)
    assert text == ("settings.camera_link_mbps: the cameras need 900.1 Mbit/s together "
                    "(slot1 400.0, slot2 300.0, slot3 200.0, slot4 0.1), more than 90% of the "
                    "shared link's 1000.0 Mbit/s (900.0); lower their frame rate or "
                    "transport.link_throughput_limit, or put them on separate links")
    check_shared_link(cams, 1000e6 / 8 * 0.9, headroom=1.0)
    with pytest.raises(ConfigError, match="more than 50% of"):
        check_shared_link(cams, 1000e6 / 8, headroom=0.5)


@pytest.mark.parametrize(("link", "headroom", "field"), [
    (-125e6, 0.9, "settings.camera_link_mbps"), (0.0, 0.9, "settings.camera_link_mbps"),
    (math.nan, 0.9, "settings.camera_link_mbps"), (math.inf, 0.9, "settings.camera_link_mbps"),
    (125e6, 0.0, "headroom"), (125e6, 1.5, "headroom"), (125e6, math.nan, "headroom"),
])
def test_shared_link_bad_inputs(link: float, headroom: float, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        check_shared_link({"a": _tp(1.0)}, link, headroom=headroom)
    assert exc.value.field == field and "\n" not in str(exc.value)


def test_shared_link_bad_camera_figure() -> None:
    for bad in (math.nan, -1.0, math.inf):
        with pytest.raises(ConfigError) as exc:
            check_shared_link({"a": _tp(1.0), "b": CameraThroughput(bad, "x")}, 125e6)
        assert exc.value.field == "b.throughput"


class FakeDriver:
    def __init__(self, mbit: float, tl_type: str = "GEV") -> None:
        self.mbit = mbit
        self.entry = type("Entry", (), {"tl_type": tl_type})()

    def throughput(self) -> CameraThroughput:
        return _tp(self.mbit)


def test_check_station_cameras_counts_ethernet_genicam_cameras_only() -> None:
    cams = {"a": FakeDriver(500.0), "b": FakeDriver(500.0, "U3V"), "sim": object(),
            "c": FakeDriver(300.0, "Custom")}
    counted = check_station_cameras(cams, 1000)
    assert set(counted) == {"a", "c"}
    with pytest.raises(ConfigError, match=r"\(a 500\.0, c 300\.0\)"):
        check_station_cameras(cams, 800)
    for bad in (-1000, 0, math.nan):
        with pytest.raises(ConfigError) as exc:
            check_station_cameras(cams, bad)
        assert exc.value.field == "settings.camera_link_mbps"


# -- stream statistics -----------------------------------------------------------------------------

_STREAM_XML = """<?xml version="1.0" encoding="utf-8"?>
<RegisterDescription xmlns="http://www.genicam.org/GenApi/Version_1_1"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ModelName="Stream" VendorName="Test"
    StandardNameSpace="None" SchemaMajorVersion="1" SchemaMinorVersion="1"
    SchemaSubMinorVersion="0" MajorVersion="1" MinorVersion="0" SubMinorVersion="0"
    ProductGuid="8F1B2C3D-4E5F-4A6B-9C7D-0E1F2A3B4C5E"
    VersionGuid="1A2B3C4D-5E6F-4071-8293-A4B5C6D7E8FA">
  <Category Name="Root" NameSpace="Standard">
    <pFeature>StreamLostFrameCount</pFeature><pFeature>GevResendPacketCount</pFeature>
    <pFeature>StreamDeliveredFrameCount</pFeature>
  </Category>
  <Integer Name="StreamLostFrameCount" NameSpace="Standard"><Value>3</Value></Integer>
  <Integer Name="GevResendPacketCount" NameSpace="Standard"><Value>17</Value></Integer>
  <Integer Name="StreamDeliveredFrameCount" NameSpace="Standard"><Value>40</Value></Integer>
</RegisterDescription>"""


class _Module:
    num_delivered = 41

    @property
    def num_underrun(self) -> int:
        raise gt.NotAvailableException("not available")


class _Stream:
    def __init__(self, node_map: Any) -> None:
        self.node_map = node_map
        self.module = _Module()


def test_stream_statistics_report_only_what_exists() -> None:
    """Node-map counters by their producer names; GenTL info only where the node map has none;
    a counter that raises is left out, not reported as 0."""
    nm = ga.NodeMap()
    nm.load_xml_from_string(_STREAM_XML)
    acquirer = type("Acq", (), {"data_streams": [_Stream(nm)]})()
    assert stream_statistics(acquirer) == {"lost_frames": 3, "resent_packets": 17,
                                           "delivered_frames": 40}
    bare = type("Acq", (), {"data_streams": [_Stream(None)]})()
    assert stream_statistics(bare) == {"delivered_frames": 41}
    assert stream_statistics(type("Acq", (), {"data_streams": []})()) == {}


def test_statistics_delta() -> None:
    before = {"lost_frames": 3, "delivered_frames": 40, "gone": 1}
    after = {"lost_frames": 5, "delivered_frames": 2, "new": 7}
    assert statistics_delta(before, after) == {"lost_frames": 2, "delivered_frames": 2}


# -- viky.cti ------------------------------------------------------------------------------------

needs_viky = pytest.mark.skipif(not os.path.isfile(VIKY), reason="viky.cti not in this wheel")
Factory = Callable[..., GenICamCamera]


@pytest.fixture()
def make_cam(tmp_path: Path) -> Iterator[Factory]:
    opened: list[GenICamCamera] = []

    def make(serial: str, **settings: Any) -> GenICamCamera:
        cam = GenICamCamera(f"cam{serial}", GenICamSettings(cti=[VIKY], serial=serial,
                                                            **settings),
                            DriverContext("st", tmp_path))
        opened.append(cam)
        cam.open()
        return cam

    yield make
    for cam in opened:
        cam.close()


def _direct(cam: GenICamCamera, name: str) -> Any:
    """A feature read through harvesters' node map, not the harness's feature access."""
    return cam.acquirer.remote_device.node_map.get_node(name).value


@needs_viky
def test_viky_throughput_is_payload_times_frame_rate(make_cam: Factory) -> None:
    """viky has no DeviceLinkThroughputLimit and no GevSCPSPacketSize: PayloadSize x
    AcquisitionFrameRate exactly, no GVSP overhead."""
    cam = make_cam("1", features={"AcquisitionFrameRate": 50})
    for feature in ("DeviceLinkThroughputLimit", "DeviceLinkThroughputLimitMode",
                    "GevSCPSPacketSize", "GevSCPD", "ResultingFrameRate"):
        assert not cam.features.has(feature)
    got = cam.throughput()
    assert got.source == "PayloadSize x AcquisitionFrameRate"
    assert got.packet_size is None and got.packets_per_frame is None
    assert got.bytes_per_s == int(_direct(cam, "PayloadSize")) * 50.0
    cam.set("AcquisitionFrameRate", 10)
    assert cam.throughput().bytes_per_s == int(_direct(cam, "PayloadSize")) * 10.0


@needs_viky
def test_viky_stream_statistics(make_cam: Factory) -> None:
    """viky's data-stream node map has none of the counters: only the GenTL stream info
    (delivered, underrun) and the driver's incomplete-buffer count are reported."""
    cam = make_cam("1")
    stream_map = cam.acquirer.data_streams[0].node_map
    for names in STREAM_COUNTERS.values():
        assert not any(stream_map.has_node(n) for n in names)
    before = cam.stream_statistics()
    assert set(before) == {"delivered_frames", "underrun_frames", "incomplete_discarded"}
    cam.grab(3)
    delta = statistics_delta(before, cam.stream_statistics())
    assert delta["delivered_frames"] >= 3
    assert delta["underrun_frames"] >= 0 and delta["incomplete_discarded"] == 0


@needs_viky
def test_viky_station_of_three_cameras(make_cam: Factory) -> None:
    """Three viky devices: the sum is 3 x PayloadSize x rate read directly; a link just big
    enough passes, one 1 % smaller is refused naming all three."""
    cams = {f"cam{s}": make_cam(s) for s in "012"}
    total = sum(int(_direct(c, "PayloadSize")) * float(_direct(c, "AcquisitionFrameRate"))
                for c in cams.values())
    link_mbps = total * 8 / 1e6 / 0.9
    counted = check_station_cameras(cams, link_mbps * 1.0001)
    assert set(counted) == set(cams)
    with pytest.raises(ConfigError) as exc:
        check_station_cameras(cams, link_mbps * 0.99)
    text = str(exc.value)
    assert all(f"{name} " in text for name in cams) and "\n" not in text
    assert f"{total * 8e-6:.1f} Mbit/s together" in text


@pytest.mark.skipif(not os.path.isfile(VIKY), reason="viky.cti not in this wheel")
def test_station_refuses_to_open_when_its_gige_cameras_overfill_the_link(tmp_path: Path) -> None:
    """Two viky cameras at 400 x 400 RGBa8 and 20 Hz need about 3.3 Gbit/s together: a
    station whose settings say they share a 1 Gbit/s link does not open (one line naming both
    cameras), and leaves nothing held; on a 10 Gbit/s link it opens and records the figures."""
    from harness.errors import ConfigError
    from harness.station.station import Station

    def station(mbps: int) -> Path:
        def cam(serial: str) -> str:
            return (f"{{driver: genicam, cti: ['{VIKY}'], serial: '{serial}', features: "
                    "{AcquisitionFrameRate: 20}}")

        path = tmp_path / f"st{mbps}.yaml"
        path.write_text(f"id: bw-{mbps}\nlock_dir: {tmp_path}\ncameras:\n"
                        f"  left: {cam('1')}\n  right: {cam('2')}\n"
                        f"settings: {{camera_link_mbps: {mbps}}}\n")
        return path

    with pytest.raises(ConfigError) as err:
        Station.load(station(1000)).open()
    text = str(err.value)
    assert "\n" not in text and "camera.left" in text and "camera.right" in text
    assert "settings.camera_link_mbps" in text
    with Station.load(station(1000 * 10)) as opened:  # the lock was released above
        assert set(opened.camera_throughput) == {"camera.left", "camera.right"}
