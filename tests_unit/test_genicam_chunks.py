"""Per-frame metadata from chunk data: what the sensor did, not what was asked.

A GenApi node map of our own with SFNC chunk features (ChunkModeActive, ChunkSelector/ChunkEnable,
ChunkExposureTime, ChunkGain, ChunkTimestamp, ChunkFrameID) stands behind a stub acquirer whose
``_update_chunk_data`` (harvesters' chunk-adapter hook) copies each buffer's chunk values into the
chunk registers, as a real chunk adapter maps them onto the buffer. The camera's ExposureTime
stays at 1000 us while the chunks say what each frame really got (an auto-exposure at work), so
the test fails if the driver records the node-map value instead of the chunk.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import genicam.genapi as ga
import genicam.gentl as gt
import numpy as np
import pytest

from harness.devices.camera.genicam import GenICamCamera, GenICamSettings
from harness.devices.camera.harvester import DeviceEntry
from harness.devices.camera.pixelformats import BY_NAME, pack
from harness.errors import ConfigError
from harness.registry import DriverContext
from tests_unit.test_nodemap import _HEAD, Port, _reg

CHUNK_XML = (
    _HEAD
    + '<Category Name="Root" NameSpace="Standard">'
    + "".join(f"<pFeature>{f}</pFeature>" for f in (
        "Width", "Height", "PixelFormat", "ExposureTime", "PayloadSize", "ChunkModeActive",
        "ChunkSelector", "ChunkEnable", "ChunkExposureTime", "ChunkGain", "ChunkTimestamp",
        "ChunkFrameID")) + "</Category>\n"
    + '<Integer Name="Width" NameSpace="Standard"><pValue>W_Val</pValue><Min>8</Min>'
      '<Max>64</Max></Integer>\n' + _reg("W_Val", 0x100)
    + '<Integer Name="Height" NameSpace="Standard"><pValue>H_Val</pValue><Min>8</Min>'
      '<Max>64</Max></Integer>\n' + _reg("H_Val", 0x104)
    + '<Integer Name="PayloadSize" NameSpace="Standard"><pValue>W_Val</pValue></Integer>\n'
    + '<Enumeration Name="PixelFormat" NameSpace="Standard"><EnumEntry Name="Mono12p"><Value>'
      '17563719</Value></EnumEntry><pValue>PF_Val</pValue></Enumeration>\n' + _reg("PF_Val", 0x118)
    + '<Float Name="ExposureTime" NameSpace="Standard"><pValue>Exp_Val</pValue><Min>10</Min>'
      '<Max>1000000</Max><Unit>us</Unit></Float>\n' + _reg("Exp_Val", 0x120, 8, kind="FloatReg")
    + '<Boolean Name="ChunkModeActive" NameSpace="Standard"><pValue>CMA_Val</pValue></Boolean>\n'
    + _reg("CMA_Val", 0x180)
    + '<Enumeration Name="ChunkSelector" NameSpace="Standard">'
    + "".join(f'<EnumEntry Name="{e}"><Value>{i}</Value></EnumEntry>'
              for i, e in enumerate(("ExposureTime", "Gain", "Timestamp", "FrameID")))
    + '<pValue>CS_Val</pValue><pSelected>ChunkEnable</pSelected></Enumeration>\n'
    + _reg("CS_Val", 0x184)
    + '<Boolean Name="ChunkEnable" NameSpace="Standard"><pValue>CE_Val</pValue></Boolean>\n'
    + '<IntReg Name="CE_Val"><Address>0x190</Address><pIndex Offset="4">CS_Val</pIndex>'
      '<Length>4</Length><AccessMode>RW</AccessMode><pPort>Device</pPort><Sign>Unsigned</Sign>'
      '<Endianess>LittleEndian</Endianess></IntReg>\n'
    + '<Float Name="ChunkExposureTime" NameSpace="Standard"><pValue>CX_Val</pValue>'
      '<Unit>us</Unit></Float>\n' + _reg("CX_Val", 0x1A0, 8, "RO", False, "FloatReg")
    + '<Float Name="ChunkGain" NameSpace="Standard"><pValue>CG_Val</pValue></Float>\n'
    + _reg("CG_Val", 0x1A8, 8, "RO", False, "FloatReg")
    + '<Integer Name="ChunkTimestamp" NameSpace="Standard"><pValue>CT_Val</pValue></Integer>\n'
    + _reg("CT_Val", 0x1B0, 8, "RO", False)
    + '<Integer Name="ChunkFrameID" NameSpace="Standard"><pValue>CF_Val</pValue></Integer>\n'
    + _reg("CF_Val", 0x1B8, 8, "RO", False)
    + '<Port Name="Device" NameSpace="Standard"/>\n</RegisterDescription>\n')


class _Raw:
    def __init__(self, i: int, parent: Any) -> None:
        frame = np.full((8, 16), 100 + i, np.uint16)
        self.pixel_format = BY_NAME["Mono12p"].code
        self.height, self.width = frame.shape
        self.raw_buffer = pack(frame, "Mono12p")
        self.image_offset = 0
        self.padding_x = 0
        self.frame_id = 7  # a producer that leaves the buffer's frame id stale
        self.parent = parent
        self.chunks = {"exposure": 1000.0 + 250 * i, "gain": 0.5 * i,
                       "timestamp": 5_000_000_000 + i * 10_000_000, "frame_id": 40 + i}

    @property
    def timestamp_ns(self) -> int:
        raise gt.NotAvailableException("timestamps not supported")


class ChunkAcquirer:
    class Events:
        INCOMPLETE_BUFFER = 4

    def __init__(self) -> None:
        self.port = Port()
        struct.pack_into("<I", self.port.mem, 0x100, 16)
        struct.pack_into("<I", self.port.mem, 0x104, 8)
        struct.pack_into("<I", self.port.mem, 0x118, BY_NAME["Mono12p"].code)
        nm = ga.NodeMap()
        nm.load_xml_from_string(CHUNK_XML)
        assert nm.connect(self.port, "Device")
        self.remote_device = type("RD", (), {"node_map": nm})()
        self.device = type("D", (), {"module": type("M", (), {"access_status": 5})()})()
        self.min_num_buffers = 1
        self.num_buffers = 3
        self.acquiring = False
        self.count = 0
        self.queued = 0

    def is_valid(self) -> bool:
        return True

    def is_acquiring(self) -> bool:
        return self.acquiring

    def add_callback(self, event: int, callback: Any) -> None:
        pass

    def start(self) -> None:
        self.acquiring = True

    def stop(self) -> None:
        self.acquiring = False

    def queue_buffer(self, raw: Any) -> None:
        self.queued += 1

    def fetch(self, *, timeout: float, is_raw: bool) -> _Raw:
        assert is_raw and timeout > 0 and self.acquiring
        self.count += 1
        return _Raw(self.count, self)

    def _update_chunk_data(self, *, buffer: _Raw, is_manual: bool) -> None:
        c = buffer.chunks
        struct.pack_into("<d", self.port.mem, 0x1A0, c["exposure"])
        struct.pack_into("<d", self.port.mem, 0x1A8, c["gain"])
        struct.pack_into("<Q", self.port.mem, 0x1B0, c["timestamp"])
        struct.pack_into("<Q", self.port.mem, 0x1B8, c["frame_id"])


class _Manager:
    generation = 1

    def __init__(self, ia: Any) -> None:
        self.ia = ia
        self.entry = DeviceEntry(0, "CHUNK_DEV", "Harness", "Chunky", "C1", "", "1", "Custom",
                                 "available", "chunk.cti")

    def add_producers(self, paths: list[str]) -> bool:
        return False

    def devices(self) -> list[DeviceEntry]:
        return [self.entry]

    def acquire(self, entry: DeviceEntry, owner: str) -> Any:
        return self.ia

    def release(self, entry: DeviceEntry, owner: str) -> None:
        pass


def _camera(tmp_path: Path, ia: ChunkAcquirer, chunks: bool) -> GenICamCamera:
    cti = tmp_path / "chunk.cti"
    cti.write_bytes(b"")
    settings = GenICamSettings(cti=[str(cti)], serial="C1", chunks=chunks,
                               features={"ExposureTime": 1000.0})
    cam = GenICamCamera("camera", settings, DriverContext("st", tmp_path),
                        manager=_Manager(ia))  # type: ignore[arg-type]
    cam.open()
    return cam


def test_chunks_enabled_on_open_and_read_per_frame(tmp_path: Path) -> None:
    ia = ChunkAcquirer()
    cam = _camera(tmp_path, ia, chunks=True)
    assert cam.get("ChunkModeActive") is True
    for entry, index in (("ExposureTime", 0), ("Gain", 1), ("Timestamp", 2), ("FrameID", 3)):
        assert struct.unpack_from("<I", ia.port.mem, 0x190 + 4 * index)[0] == 1, entry
    stack = cam.grab(3)
    assert [m.exposure_us for m in stack.meta] == [1250.0, 1500.0, 1750.0]
    assert [m.gain_db for m in stack.meta] == [0.5, 1.0, 1.5]
    assert [m.frame_id for m in stack.meta] == [41, 42, 43]  # chunk FrameID, not the stale 7
    assert [m.timestamp_s for m in stack.meta] == pytest.approx([5.01, 5.02, 5.03])
    assert stack.frames[:, 0, 0].tolist() == [101, 102, 103]  # Mono12p unpacked
    assert cam.get("ExposureTime") == 1000.0 and ia.queued == 3
    cam.close()


def test_without_chunks_the_node_map_is_read_back(tmp_path: Path) -> None:
    ia = ChunkAcquirer()
    cam = _camera(tmp_path, ia, chunks=False)
    stack = cam.grab(2)
    assert [m.exposure_us for m in stack.meta] == [1000.0, 1000.0]
    assert [m.frame_id for m in stack.meta] == [7, 7]
    assert cam.last_grab is not None and cam.last_grab.frame_id_gaps == ((7, 7),)
    cam.close()


def test_chunks_asked_of_a_camera_without_them(tmp_path: Path) -> None:
    class NoChunks(ChunkAcquirer):
        def __init__(self) -> None:
            super().__init__()
            nm = ga.NodeMap()
            nm.load_xml_from_string(CHUNK_XML.replace("ChunkModeActive", "ChunkModeX"))
            assert nm.connect(self.port, "Device")
            self.remote_device = type("RD", (), {"node_map": nm})()

    with pytest.raises(ConfigError, match=r"camera\.chunks: .*offers no chunk data"):
        _camera(tmp_path, NoChunks(), chunks=True)
