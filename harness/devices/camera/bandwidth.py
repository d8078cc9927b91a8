"""Camera stream bandwidth on a shared link, and the producer's stream statistics.

On a station whose GigE Vision cameras share one link (a switch uplink or one NIC port), the
cameras' streams must fit it, or packets are dropped and frames arrive incomplete. Before a run,
:func:`check_station_cameras` adds up what each camera will send and refuses, in one line naming
the cameras, when the sum exceeds a headroom fraction of the link
(docs/standards.md#gige-vision-bandwidth).

What a camera will send (:func:`read_throughput`, features by their SFNC names):

1. ``DeviceLinkThroughputLimit`` (bytes/s) when ``DeviceLinkThroughputLimitMode`` is ``On``, or
   when the camera offers the limit without a mode switch: SFNC defines it as the cap on the
   device's streaming bandwidth, so it is the most the camera can take of the link.
2. Otherwise ``PayloadSize`` (bytes per frame) times the frame rate (``ResultingFrameRate``,
   ``AcquisitionResultingFrameRate``, ``ResultingFrameRateAbs``, else ``AcquisitionFrameRate``
   unless ``AcquisitionFrameRateEnable`` is false), plus, for a GigE Vision stream (the camera
   has ``GevSCPSPacketSize``), the GVSP, UDP, IP and Ethernet bytes of every packet
   (:func:`gvsp_wire_bytes`), capped by what the inter-packet delay ``GevSCPD`` lets through.

Header sizes assumed (:data:`IP_HEADER` ...): IPv4 without options, 20 bytes (RFC 791); UDP,
8 bytes (RFC 768); the GVSP header of GigE Vision 2.x, 8 bytes, or 20 bytes in extended-ID mode
(``GevGVSPExtendedIDMode`` On); the image data leader 36 bytes and trailer 8 bytes after their
GVSP headers (GigE Vision 2.x, image payload type); on the wire each Ethernet frame adds
preamble and start delimiter (8), MAC header (14), FCS (4) and the inter-packet gap (12), and
carries at least 46 bytes of payload (IEEE 802.3). ``GevSCPSPacketSize`` counts the IP datagram
(IP, UDP and GVSP headers plus data, no Ethernet bytes), as GigE Vision's stream channel packet
size register does. A link's capacity is its line rate (1000 Mbit/s for 1000BASE-T), which
these wire bytes are measured against.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from harness.errors import ConfigError, FeatureError

log = logging.getLogger(__name__)

IP_HEADER = 20
"""IPv4 header without options, bytes (RFC 791)."""
UDP_HEADER = 8
"""UDP header, bytes (RFC 768)."""
GVSP_HEADER = 8
"""GVSP packet header in standard-ID mode, bytes (GigE Vision 2.x)."""
GVSP_HEADER_EXTENDED = 20
"""GVSP packet header in extended-ID mode (64-bit block id, 32-bit packet id), GigE Vision 2.x."""
GVSP_LEADER_IMAGE = 36
"""Image data leader after its GVSP header, bytes (GigE Vision 2.x, image payload type)."""
GVSP_TRAILER_IMAGE = 8
"""Image data trailer after its GVSP header, bytes (GigE Vision 2.x, image payload type)."""
ETHERNET_OVERHEAD = 38
"""Per Ethernet frame on the wire: preamble + SFD 8, MAC header 14, FCS 4, gap 12 (IEEE 802.3)."""
ETHERNET_MIN_PAYLOAD = 46
"""Smallest Ethernet payload; shorter IP datagrams are padded (IEEE 802.3)."""

DEFAULT_HEADROOM = 0.9
"""Fraction of the link the cameras may fill together; the rest is for bursts and control
traffic (GVCP, resends). The harness's choice, not a standard's."""

FRAME_RATE_FEATURES = ("ResultingFrameRate", "AcquisitionResultingFrameRate",
                       "ResultingFrameRateAbs")
"""Features that report the frame rate the camera will actually run at, first found wins."""

NON_ETHERNET_TL = frozenset({"CL", "CLHS", "CXP", "IIDC", "U3V", "UVC", "PCI"})
"""GenTL transport-layer types that never share an Ethernet link (skipped by the check)."""

STREAM_COUNTERS: dict[str, tuple[str, ...]] = {
    "delivered_frames": ("StreamDeliveredFrameCount",),
    "lost_frames": ("StreamLostFrameCount",),
    "dropped_frames": ("StreamDroppedFrameCount",),
    "incomplete_frames": ("StreamIncompleteFrameCount",),
    "failed_buffers": ("StreamFailedBufferCount",),
    "missed_packets": ("StreamMissedPacketCount",),
    "failed_packets": ("GevFailedPacketCount",),
    "total_packets": ("GevTotalPacketCount",),
    "resent_packets": ("StreamResendPacketCount", "GevResendPacketCount"),
    "resend_requests": ("StreamPacketResendRequestCount", "GevResendRequestCount"),
}
"""Statistic key -> data-stream node-map counters that report it (GenTL SFNC names and those
producers use), first readable wins. Counters run from when the stream was opened."""

GENTL_STREAM_INFO = {"delivered_frames": "num_delivered", "underrun_frames": "num_underrun"}
"""Statistic key -> GenTL data-stream info (``STREAM_INFO_NUM_DELIVERED``,
``STREAM_INFO_NUM_UNDERRUN``: frames lost for want of a queued buffer) as harvesters names it."""


class FeatureReader(Protocol):
    """Read access to a node map (:class:`~harness.devices.camera.nodemap.NodeMapFeatures`)."""

    def is_available(self, name: str) -> bool: ...

    def get(self, name: str) -> Any: ...


@dataclass(frozen=True)
class CameraThroughput:
    """What one camera will send on its link, and how that was worked out.

    ``bytes_per_s`` is what the shared-link check counts. ``source`` names the feature(s) it
    came from. For a stream estimate, ``packet_size`` is ``None`` when the camera is not a
    GigE Vision device (no GVSP overhead added); ``delay_limited`` says the inter-packet delay
    caps the stream below ``payload_bytes * frame_rate_hz`` plus overhead.
    """

    bytes_per_s: float
    source: str
    payload_bytes: int | None = None
    frame_rate_hz: float | None = None
    packet_size: int | None = None
    packets_per_frame: int | None = None
    wire_bytes_per_frame: int | None = None
    packet_delay_s: float | None = None
    delay_limited: bool = False

    @property
    def mbit_per_s(self) -> float:
        return self.bytes_per_s * 8.0 / 1e6

    def as_dict(self) -> dict[str, Any]:
        """For the run record (with ``mbit_per_s``)."""
        return {**asdict(self), "mbit_per_s": self.mbit_per_s}


def _positive(value: float, field: str, what: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0.0:
        raise ConfigError(f"{value!r}: {what} must be a finite number > 0", field=field)
    return number


def gvsp_wire_bytes(payload_bytes: int, packet_size: int, *, extended_id: bool = False
                    ) -> tuple[int, int]:
    """Bytes on the wire for one frame of ``payload_bytes`` sent as GVSP packets of
    ``packet_size`` (``GevSCPSPacketSize``), and the number of packets (leader and trailer
    included).

    With header bytes ``H`` = IP + UDP + GVSP, each data packet carries ``D = S - H`` payload
    bytes, so ``n = ceil(P / D)`` data packets; every datagram is padded to the Ethernet minimum
    and gets :data:`ETHERNET_OVERHEAD`. Module docstring: where each size comes from.
    """
    header = IP_HEADER + UDP_HEADER + (GVSP_HEADER_EXTENDED if extended_id else GVSP_HEADER)
    if isinstance(payload_bytes, bool) or int(payload_bytes) != payload_bytes \
            or payload_bytes < 0:
        raise ConfigError(f"{payload_bytes!r}: PayloadSize must be an integer >= 0",
                          field="PayloadSize")
    if isinstance(packet_size, bool) or int(packet_size) != packet_size \
            or packet_size <= header:
        raise ConfigError(f"{packet_size!r}: GevSCPSPacketSize must be an integer > {header} "
                          f"(IP + UDP + GVSP headers)", field="GevSCPSPacketSize")
    payload, size = int(payload_bytes), int(packet_size)

    def wire(datagram: int) -> int:
        return max(datagram, ETHERNET_MIN_PAYLOAD) + ETHERNET_OVERHEAD

    data = size - header
    full, rest = divmod(payload, data)
    total = full * wire(size) + (wire(header + rest) if rest else 0)
    total += wire(header + GVSP_LEADER_IMAGE) + wire(header + GVSP_TRAILER_IMAGE)
    return total, full + (1 if rest else 0) + 2


def stream_throughput(payload_bytes: int, frame_rate_hz: float, *,
                      packet_size: int | None = None, extended_id: bool = False,
                      packet_delay_s: float | None = None,
                      link_bytes_per_s: float | None = None,
                      source: str = "PayloadSize x frame rate") -> CameraThroughput:
    """Bytes per second of a camera streaming ``payload_bytes`` frames at ``frame_rate_hz``.

    Without ``packet_size`` (not a GigE Vision stream) it is ``P * f``. With it, ``W * f`` with
    ``W`` from :func:`gvsp_wire_bytes`. An inter-packet delay ``d`` (``GevSCPD`` in seconds)
    spaces the ``n`` packets of a frame, so the camera cannot send faster than
    ``W / (W / L + n * d)`` with ``L`` its link's line rate in bytes/s (``W / (n * d)`` when
    ``L`` is unknown: an upper bound, so the check stays on the safe side); the result is the
    smaller of the two.
    """
    rate = float(frame_rate_hz)
    if not math.isfinite(rate) or rate < 0.0:
        raise ConfigError(f"{frame_rate_hz!r}: the frame rate must be a finite number >= 0 Hz",
                          field="frame_rate_hz")
    if packet_size is None:
        if isinstance(payload_bytes, bool) or int(payload_bytes) != payload_bytes \
                or payload_bytes < 0:
            raise ConfigError(f"{payload_bytes!r}: PayloadSize must be an integer >= 0",
                              field="PayloadSize")
        return CameraThroughput(float(payload_bytes) * rate, source, int(payload_bytes), rate)
    wire, packets = gvsp_wire_bytes(payload_bytes, packet_size, extended_id=extended_id)
    stream = wire * rate
    limited = False
    delay = None
    if packet_delay_s is not None and packet_delay_s > 0.0:
        delay = _positive(packet_delay_s, "GevSCPD", "the inter-packet delay (s)")
        line_time = wire / _positive(link_bytes_per_s, "link_bytes_per_s", "the link rate") \
            if link_bytes_per_s is not None else 0.0
        cap = wire / (line_time + packets * delay)
        if cap < stream:
            stream, limited = cap, True
    return CameraThroughput(stream, source, int(payload_bytes), rate, int(packet_size), packets,
                            wire, delay, limited)


def _read(f: FeatureReader, name: str) -> Any:
    """The value of ``name``, or ``None`` when the camera lacks it or it is not readable."""
    if not f.is_available(name):
        return None
    try:
        return f.get(name)
    except FeatureError:
        return None


def _frame_rate(f: FeatureReader) -> tuple[float, str] | None:
    for name in FRAME_RATE_FEATURES:
        value = _read(f, name)
        if value is not None:
            return float(value), name
    if _read(f, "AcquisitionFrameRateEnable") is False:
        return None  # the camera runs as fast as exposure and readout allow: unknown here
    value = _read(f, "AcquisitionFrameRate")
    return None if value is None else (float(value), "AcquisitionFrameRate")


def read_throughput(f: FeatureReader, *, device: str = "camera",
                    field: str = "camera") -> CameraThroughput:
    """What the camera behind node map ``f`` will send (module docstring: the order of rules).

    ``device`` names the camera in errors and ``field`` is the station-file key they point at.
    Raises :class:`ConfigError` naming the missing features when neither a throughput limit
    nor payload size and frame rate can be read.
    """
    limit = _read(f, "DeviceLinkThroughputLimit")
    has_mode = f.is_available("DeviceLinkThroughputLimitMode")
    if limit is not None and (not has_mode or _read(f, "DeviceLinkThroughputLimitMode") == "On"):
        return CameraThroughput(float(limit), "DeviceLinkThroughputLimit")
    payload = _read(f, "PayloadSize")
    rate = _frame_rate(f)
    if payload is None or rate is None:
        missing = ([] if payload is not None else ["PayloadSize"]) + \
            ([] if rate is not None else
             [f"a frame rate ({', '.join(FRAME_RATE_FEATURES)} or AcquisitionFrameRate with "
              f"AcquisitionFrameRateEnable)"])
        raise ConfigError(f"{device}: its link throughput is unknown: no "
                          f"DeviceLinkThroughputLimit with DeviceLinkThroughputLimitMode On, and "
                          f"no readable {' or '.join(missing)}; set "
                          f"transport.link_throughput_limit", field=field)
    packet_size = _read(f, "GevSCPSPacketSize")
    if packet_size is None:
        return stream_throughput(int(payload), rate[0],
                                 source=f"PayloadSize x {rate[1]}")
    delay_s = None
    delay_ticks = _read(f, "GevSCPD")
    if delay_ticks:
        ticks_per_s = _read(f, "GevTimestampTickFrequency")
        if ticks_per_s:
            delay_s = float(delay_ticks) / float(ticks_per_s)
        else:
            log.info("%s: GevSCPD=%s ignored: no GevTimestampTickFrequency to convert it",
                     device, delay_ticks)
    link = None
    speed_mbps = _read(f, "GevLinkSpeed")
    if speed_mbps:
        link = float(speed_mbps) * 1e6 / 8.0
    else:
        speed = _read(f, "DeviceLinkSpeed")
        link = float(speed) if speed else None
    return stream_throughput(int(payload), rate[0], packet_size=int(packet_size),
                             extended_id=_read(f, "GevGVSPExtendedIDMode") == "On",
                             packet_delay_s=delay_s, link_bytes_per_s=link,
                             source=f"PayloadSize x {rate[1]} + GVSP/UDP/IP/Ethernet headers")


def check_shared_link(cameras: Mapping[str, CameraThroughput], link_bytes_per_s: float, *,
                      headroom: float = DEFAULT_HEADROOM,
                      field: str = "settings.camera_link_mbps") -> None:
    """Refuse (one-line :class:`ConfigError`) when the cameras together need more than
    ``headroom`` of a link of ``link_bytes_per_s``; the message names every camera with its
    share, the sum and the link's capacity in Mbit/s."""
    link = _positive(link_bytes_per_s, field, "the link capacity")
    fraction = float(headroom)
    if not math.isfinite(fraction) or not 0.0 < fraction <= 1.0:
        raise ConfigError(f"{headroom!r}: the headroom must be in (0, 1]", field="headroom")
    for name, cam in cameras.items():
        value = float(cam.bytes_per_s)
        if not math.isfinite(value) or value < 0.0:
            raise ConfigError(f"{name}: throughput {cam.bytes_per_s!r} bytes/s is not a finite "
                              f"number >= 0", field=f"{name}.throughput")
    total = sum(cam.bytes_per_s for cam in cameras.values())
    if total <= fraction * link:
        return

    def mbit(bytes_per_s: float) -> str:
        return f"{bytes_per_s * 8e-6:.1f}"

    shares = ", ".join(f"{name} {mbit(cam.bytes_per_s)}" for name, cam in cameras.items())
    raise ConfigError(f"the cameras need {mbit(total)} Mbit/s together ({shares}), more than "
                      f"{fraction:.0%} of the shared link's {mbit(link)} Mbit/s "
                      f"({mbit(fraction * link)}); lower their frame rate or "
                      f"transport.link_throughput_limit, or put them on separate links",
                      field=field)


def check_station_cameras(cameras: Mapping[str, Any], link_mbps: float, *,
                          headroom: float = DEFAULT_HEADROOM) -> dict[str, CameraThroughput]:
    """Check at start that the station's cameras fit the link of ``link_mbps`` they share.

    Counts every open camera whose driver has ``throughput()`` (the GenICam driver) and whose
    GenTL transport layer can be Ethernet (not one of :data:`NON_ETHERNET_TL`); other cameras
    are left out. Returns what was counted, by camera name, for the run record. Raises
    :class:`ConfigError` (the station's ``settings.camera_link_mbps``) when the sum exceeds
    ``headroom`` of the link, or naming a camera whose throughput cannot be read.
    """
    link = _positive(link_mbps, "settings.camera_link_mbps", "the link rate in Mbit/s")
    counted: dict[str, CameraThroughput] = {}
    for name, cam in cameras.items():
        method = getattr(cam, "throughput", None)
        if not callable(method):
            continue
        tl_type = getattr(getattr(cam, "entry", None), "tl_type", "")
        if tl_type in NON_ETHERNET_TL:
            log.info("%s: %s transport, not on the shared Ethernet link", name, tl_type)
            continue
        counted[name] = method()
    check_shared_link(counted, link * 1e6 / 8.0, headroom=headroom)
    return counted


def stream_statistics(acquirer: Any, *, device: str = "camera") -> dict[str, int]:
    """The producer's packet and frame counters of ``acquirer``'s first data stream.

    ``acquirer`` is a harvesters ``ImageAcquirer`` (``data_streams[0]`` has the GenTL stream
    ``module`` and the stream's GenApi ``node_map``). Keys are those of
    :data:`STREAM_COUNTERS` and :data:`GENTL_STREAM_INFO` that the producer reports; a counter
    it lacks is left out, never reported as 0. The counters run from when the stream was
    opened: record the difference over a run (:func:`statistics_delta`). The caller holds the
    GenApi lock.
    """
    import genicam.gentl as gt  # imported here: the arithmetic above needs no genicam

    from harness.devices.camera.nodemap import NodeMapFeatures

    streams = list(getattr(acquirer, "data_streams", None) or [])
    if not streams:
        return {}
    stream = streams[0]
    out: dict[str, int] = {}
    node_map = getattr(stream, "node_map", None)
    if node_map is not None:
        f = NodeMapFeatures(node_map, f"{device} data stream")
        for key, names in STREAM_COUNTERS.items():
            for name in names:
                value = _read(f, name)
                if value is not None:
                    out[key] = int(value)
                    break
    module = getattr(stream, "module", None)
    for key, attr in GENTL_STREAM_INFO.items():
        if key in out or module is None:
            continue
        try:
            out[key] = int(getattr(module, attr))
        except (gt.GenericException, AttributeError) as exc:  # not available: not reported
            log.debug("%s: GenTL stream info %s not available: %s", device, attr, exc)
    return out


def statistics_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """``after - before`` for every counter in both (a counter that went down, because the
    stream was reopened, counts from zero: its ``after`` value)."""
    return {key: (after[key] - before[key] if after[key] >= before[key] else after[key])
            for key in after if key in before}


__all__ = ["DEFAULT_HEADROOM", "ETHERNET_MIN_PAYLOAD", "ETHERNET_OVERHEAD",
           "FRAME_RATE_FEATURES", "GENTL_STREAM_INFO", "GVSP_HEADER", "GVSP_HEADER_EXTENDED",
           "GVSP_LEADER_IMAGE", "GVSP_TRAILER_IMAGE", "IP_HEADER", "NON_ETHERNET_TL",
           "STREAM_COUNTERS", "UDP_HEADER", "CameraThroughput", "FeatureReader",
           "check_shared_link", "check_station_cameras", "gvsp_wire_bytes", "read_throughput",
           "statistics_delta", "stream_statistics", "stream_throughput"]
