"""A Python register space that a GenApi node map reads and writes.

:class:`RegisterPort` subclasses ``genicam.genapi.AbstractPort``: GenApi calls ``read(address,
length)`` and ``write(address, value)`` through SWIG directors. ``read`` must return exactly
``length`` bytes. Hooks let the simulated camera compute live registers on read (temperature,
resulting frame rate) and react to writes (acquisition start/stop, software trigger). Callers
must hold :data:`harness.devices.camera.nodemap.GENAPI_LOCK` around node-map calls (the port is
called from inside them). What GenApi expects of such a port:
docs/standards.md#genapi-node-map-on-a-python-port.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import genicam.genapi as ga

from harness.errors import CameraError

XML_PATH = Path(__file__).with_name("simcam.xml")
PORT_NAME = "Device"
SIZE = 0x200

# register addresses (simcam.xml)
VENDOR, MODEL, SERIAL, FIRMWARE = 0x000, 0x020, 0x040, 0x060
SENSOR_WIDTH, SENSOR_HEIGHT, WIDTH, HEIGHT = 0x100, 0x104, 0x108, 0x10C
OFFSET_X, OFFSET_Y, PIXEL_FORMAT, SENSOR_CFA = 0x110, 0x114, 0x118, 0x11C
EXPOSURE, GAIN_RAW, TRIGGER_MODE, TRIGGER_SOFTWARE = 0x120, 0x128, 0x12C, 0x130
ACQ_START, ACQ_STOP, ACQ_MODE, TEMPERATURE = 0x134, 0x138, 0x13C, 0x140
TL_LOCKED, BLACK_LEVEL, FRAME_RATE, FRAME_COUNT = 0x144, 0x148, 0x150, 0x158
GAIN_RAW_MAX, RESULTING_RATE, EXPOSURE_MIN, EXPOSURE_MAX = 0x15C, 0x160, 0x168, 0x170
FRAME_RATE_MAX = 0x178

PFNC = {"Mono8": 0x01080001, "Mono10": 0x01100003, "Mono12": 0x01100005,
        "Mono16": 0x01100007, "BayerRG8": 0x01080009, "BayerRG12": 0x01100011,
        "BayerGR8": 0x01080008, "BayerGR12": 0x01100010, "BayerGB8": 0x0108000A,
        "BayerGB12": 0x01100012, "BayerBG8": 0x0108000B, "BayerBG12": 0x01100013}
PFNC_NAMES = {v: k for k, v in PFNC.items()}


class RegisterPort(ga.AbstractPort):
    """Little-endian register memory with read and write hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.memory = bytearray(SIZE)
        self.read_hooks: dict[int, Callable[[], bytes]] = {}
        self.write_hooks: dict[int, Callable[[bytes], None]] = {}
        self.fail: Exception | None = None
        """When set, every access raises it (a vanished device: PSU off)."""

    # -- GenApi side --------------------------------------------------------------------------

    def get_access_mode(self) -> int:
        return int(ga.EAccessMode.RW)

    def read(self, address: int, length: int) -> bytes:
        if self.fail is not None:
            raise self.fail
        hook = self.read_hooks.get(address)
        if hook is not None:
            data = hook()
            return bytes(data[:length]).ljust(length, b"\0")
        return bytes(self.memory[address:address + length]).ljust(length, b"\0")

    def write(self, address: int, value: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        data = bytes(value)
        if address < 0 or address + len(data) > SIZE:
            raise CameraError(f"register write outside the map at 0x{address:X}")
        self.memory[address:address + len(data)] = data
        hook = self.write_hooks.get(address)
        if hook is not None:
            hook(data)

    # -- simulator side -----------------------------------------------------------------------

    def put_u32(self, address: int, value: int) -> None:
        self.memory[address:address + 4] = struct.pack("<I", int(value))

    def get_u32(self, address: int) -> int:
        return int(struct.unpack_from("<I", self.memory, address)[0])

    def put_f64(self, address: int, value: float) -> None:
        self.memory[address:address + 8] = struct.pack("<d", float(value))

    def get_f64(self, address: int) -> float:
        return float(struct.unpack_from("<d", self.memory, address)[0])

    def put_str(self, address: int, text: str, length: int = 32) -> None:
        raw = text.encode("utf-8")[:length - 1]
        self.memory[address:address + length] = raw.ljust(length, b"\0")


def node_map_for(port: RegisterPort, xml: str | None = None) -> ga.NodeMap:
    """A GenApi node map of simcam.xml connected to ``port`` (checks that connect worked)."""
    node_map = ga.NodeMap()
    node_map.load_xml_from_string(xml if xml is not None else XML_PATH.read_text("utf-8"))
    if not node_map.connect(port, PORT_NAME):
        raise CameraError(f"GenApi did not connect the register port as {PORT_NAME!r}")
    return node_map


__all__ = [
    "FRAME_RATE_MAX",
    "PFNC",
    "PFNC_NAMES",
    "PORT_NAME",
    "SIZE",
    "XML_PATH",
    "RegisterPort",
    "node_map_for",
]
