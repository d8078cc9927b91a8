"""The GenICam camera driver (``driver: genicam``): GenTL producers through harvesters.

Station file::

    camera:
      driver: genicam
      cti: [/opt/mvIMPACT/lib/x86_64/mvGenTLProducer.cti]   # and/or GENICAM_GENTL64_PATH
      serial: "22334455"            # exactly one of serial / user_name / model / index
      timeout_s: 2.0                # per fetch; a timeout is retried `retries` times
      retries: 1
      num_buffers: 8
      chunks: true                  # per-frame exposure/gain/timestamp from chunk data
      features: {PixelFormat: Mono12, ExposureTime: 10000}
      transport: {packet_size: 8192, packet_delay: 0, link_throughput_limit: 125000000}

The traps it avoids (docs/standards.md#harvesters-and-genapi-traps), each with a test in
``tests_unit/test_genicam*.py``:

* one Harvester per process and one acquirer per device, reused (:mod:`.harvester`);
* every node-map call under the process-wide :data:`~.nodemap.GENAPI_LOCK`, including acquisition
  start/stop and chunk parsing (harvesters' automatic chunk update inside ``fetch`` is off);
* every ``fetch`` has a timeout; a timeout is retried ``retries`` times, then
  :class:`~harness.errors.CameraTimeout` (an ERROR outcome) naming the device;
* frames are unpacked into new arrays (:func:`.pixelformats.unpack` always copies) before the
  GenTL buffer is queued again: ``raw_buffer`` is a view of producer memory.

Per frame the driver records what the sensor did: with ``chunks: true`` the camera's
``ChunkExposureTime``/``ChunkGain``/``ChunkTimestamp``/``ChunkFrameID`` (when it offers them),
otherwise a read-back of ``ExposureTime``/``Gain``/``DeviceTemperature`` taken with the grab.
Frame-id gaps and incomplete buffers (which harvesters drops inside ``fetch`` and signals only by
its ``INCOMPLETE_BUFFER`` callback) are counted in :attr:`GenICamCamera.last_grab` and logged;
each delivered frame carries in ``FrameMeta.incomplete_discarded`` the incomplete buffers
discarded while it was fetched, so ``FrameStack.incomplete_count()`` sees them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import genicam.genapi as ga
import genicam.gentl as gt
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.devices.base import DeviceIdentity, FeatureInfo
from harness.devices.camera.bandwidth import CameraThroughput, read_throughput, stream_statistics
from harness.devices.camera.frames import FrameMeta, FrameStack
from harness.devices.camera.harvester import (
    DeviceEntry,
    HarvesterManager,
    check_producers,
    get_manager,
    producers_from_env,
)
from harness.devices.camera.nodemap import GENAPI_LOCK, NodeMapFeatures, diff_snapshots
from harness.devices.camera.pixelformats import BY_CODE, PixelFormat, unpack
from harness.errors import (
    CameraDisconnected,
    CameraError,
    CameraTimeout,
    ConfigError,
    FeatureError,
)
from harness.registry import DriverContext, register_driver

log = logging.getLogger(__name__)

TRANSPORT_FEATURES = {
    "packet_size": "GevSCPSPacketSize",
    "packet_delay": "GevSCPD",
    "link_throughput_limit": "DeviceLinkThroughputLimit",
}
"""Station-file transport settings and the SFNC features they set."""

CHUNKS = {"ExposureTime": "ChunkExposureTime", "Gain": "ChunkGain",
          "Timestamp": "ChunkTimestamp", "FrameID": "ChunkFrameID",
          "DeviceTemperature": "ChunkDeviceTemperature"}
"""ChunkSelector entries the driver enables (when offered) and the chunk features it reads."""

_OPEN_STATUS = (5, 6)  # GenTL DEVICE_ACCESS_STATUS_OPEN_READWRITE / _OPEN_READONLY


class TransportSettings(BaseModel):
    """GigE / USB3 transport tuning (set on open; an error if the device lacks the feature)."""

    model_config = ConfigDict(extra="forbid")

    packet_size: int | None = Field(None, ge=220, le=65535)
    packet_delay: int | None = Field(None, ge=0)
    link_throughput_limit: int | None = Field(None, gt=0)


class GenICamSettings(BaseModel):
    """Station-file settings of ``driver: genicam``."""

    model_config = ConfigDict(extra="forbid")

    cti: list[str] = Field(default_factory=list)
    serial: str | None = None
    user_name: str | None = None
    model: str | None = None
    index: int | None = Field(None, ge=0)
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    retries: int = Field(1, ge=0, le=10)
    num_buffers: int = Field(8, ge=1, le=256)
    chunks: bool = False
    features: dict[str, int | float | bool | str] = Field(default_factory=dict)
    transport: TransportSettings = Field(default_factory=TransportSettings)

    @model_validator(mode="after")
    def _one_selector(self) -> GenICamSettings:
        given = [k for k in ("serial", "user_name", "model", "index")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of serial, user_name, model, index "
                             f"(found {', '.join(given) or 'none'})")
        return self


@dataclass(frozen=True)
class GrabReport:
    """What the transport did during the last grab (for the record and for alarms)."""

    frames: int
    frame_id_gaps: tuple[tuple[int, int], ...]
    incomplete: int
    timeouts_retried: int
    elapsed_s: float

    @property
    def clean(self) -> bool:
        return not self.frame_id_gaps and not self.incomplete


class _IncompleteCounter:
    """harvesters drops incomplete buffers inside ``fetch`` and only emits a callback."""

    def __init__(self) -> None:
        self.count = 0

    def emit(self, context: object | None = None) -> None:
        self.count += 1


@functools.cache
def _callback_class() -> type[Any]:
    from harvesters.core import Callback

    class Counter(Callback, _IncompleteCounter):
        def __init__(self) -> None:
            _IncompleteCounter.__init__(self)

        def emit(self, context: object | None = None) -> None:
            _IncompleteCounter.emit(self, context)

    return Counter


@register_driver("camera", "genicam")
class GenICamCamera:
    """A GenICam camera behind a GenTL producer (see the module docstring)."""

    kind: ClassVar[str]
    driver_name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]] = GenICamSettings

    def __init__(self, name: str, settings: GenICamSettings, context: DriverContext,
                 manager: HarvesterManager | None = None) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        self.manager = manager or get_manager()
        self.entry: DeviceEntry | None = None
        self.last_grab: GrabReport | None = None
        self._ia: Any = None
        self._features: NodeMapFeatures | None = None
        self._generation = -1
        self._owner = f"{context.station_id}:{name}"
        self._lock = threading.RLock()
        self._incomplete: Any = None
        self._streaming = False
        self._halt = threading.Event()  # set by safe_state() to end a grab between two frames

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """The device as errors name it: ``camera [Viky s/n 1]``."""
        if self.entry is None:
            return self.name
        return f"{self.name} [{self.entry.model} s/n {self.entry.serial}]"

    def producers(self) -> list[str]:
        """The station's ``cti`` files (relative to the station folder) plus the environment's."""
        paths = [str(self.context.resolve_path(p)) for p in self.settings.cti]
        found = check_producers(paths, source=f"{self.name}.cti") + producers_from_env()
        unique = list(dict.fromkeys(found))
        if not unique:
            raise ConfigError("no GenTL producer: list .cti files under 'cti' or set "
                              "GENICAM_GENTL64_PATH", field=f"{self.name}.cti")
        return unique

    def open(self) -> None:
        with self._lock:
            if not self.manager.add_producers(self.producers()) and not self.manager.devices():
                self.manager.update()
            self._attach(self._select(self.manager.devices()))
            try:
                self._configure()
            except BaseException:
                self.close()  # give the device back: the station may open it again
                raise

    def _select(self, devices: list[DeviceEntry]) -> DeviceEntry:
        s = self.settings
        listed = "; ".join(d.label() for d in devices) or "none"
        if s.index is not None:
            if s.index >= len(devices):
                raise CameraError(f"no device at index {s.index}; devices: {listed}",
                                  device=self.name)
            return devices[s.index]
        key, value = next((k, v) for k, v in (("serial", s.serial), ("user_name", s.user_name),
                                               ("model", s.model)) if v is not None)
        matches = [d for d in devices if getattr(d, key) == value]
        if not matches:
            raise CameraError(f"no device with {key} {value!r}; devices: {listed}",
                              device=self.name)
        if len(matches) > 1:
            raise ConfigError(f"{len(matches)} devices have {key} {value!r} ({listed}); "
                              f"select by serial", field=f"{self.name}.{key}")
        return matches[0]

    def _attach(self, entry: DeviceEntry) -> None:
        ia = self.manager.acquire(entry, self._owner)
        self.entry = entry
        self._ia = ia
        self._generation = self.manager.generation
        self._features = NodeMapFeatures(ia.remote_device.node_map, self.label)
        if ia.is_acquiring():  # a parked acquirer left streaming by an earlier owner
            with GENAPI_LOCK:
                ia.stop()
        self._streaming = False
        self._incomplete = _callback_class()()
        ia.add_callback(ia.Events.INCOMPLETE_BUFFER, self._incomplete)

    def _configure(self) -> None:
        """Transport settings, chunk mode and the station's initial feature values."""
        f = self.features
        for key, feature in TRANSPORT_FEATURES.items():
            value = getattr(self.settings.transport, key)
            if value is None:
                continue
            if not f.is_available(feature):
                raise ConfigError(f"{self.label} has no {feature} (is it a "
                                  f"{'GigE Vision' if key != 'link_throughput_limit' else 'USB3'}"
                                  f" camera?)", field=f"{self.name}.transport.{key}")
            if key == "link_throughput_limit" and f.is_available("DeviceLinkThroughputLimitMode"):
                f.set("DeviceLinkThroughputLimitMode", "On")
            self._apply(feature, value, f"transport.{key}")
        if self.settings.chunks:
            self._enable_chunks()
        for feature, value in self.settings.features.items():
            self._apply(feature, value, f"features.{feature}")

    def _apply(self, feature: str, value: Any, field: str) -> None:
        try:
            self.features.set(feature, value)
        except FeatureError as exc:
            raise ConfigError(str(exc).removeprefix(f"{self.label}: "),
                              field=f"{self.name}.{field}") from None

    def _enable_chunks(self) -> None:
        f = self.features
        if not f.is_available("ChunkModeActive"):
            raise ConfigError(f"{self.label} offers no chunk data (no ChunkModeActive)",
                              field=f"{self.name}.chunks")
        with GENAPI_LOCK:
            f.set("ChunkModeActive", True)
            if f.is_available("ChunkSelector"):
                offered = f.info("ChunkSelector").choices
                for entry in CHUNKS:
                    if entry in offered:
                        f.set("ChunkSelector", entry)
                        f.set("ChunkEnable", True)

    def close(self) -> None:
        with self._lock:
            self.safe_state()
            if self.entry is not None:
                self.manager.release(self.entry, self._owner)
            self._ia = None
            self._features = None

    def safe_state(self) -> None:
        """Stop acquisition; idempotent, never raises.

        Called from another thread (a watchdog) during a grab, it makes the grab end after the
        frame being fetched (CameraError), then stops acquisition.
        """
        self._halt.set()
        try:
            self.stop()
        except Exception as exc:
            log.warning("%s: stopping acquisition for the safe state failed: %s", self.label, exc)
        finally:
            self._halt.clear()

    def identity(self) -> DeviceIdentity:
        """Device* features, falling back to the GenTL device info (viky lacks some)."""
        entry = self._require_entry()
        f = self.features

        def read(*names: str, default: str) -> str:
            for n in names:
                if f.is_available(n):
                    try:
                        return str(f.get(n))
                    except FeatureError:
                        continue
            return default

        extra = {"device_id": entry.id, "tl_type": entry.tl_type, "producer": entry.producer}
        if entry.user_name:
            extra["user_name"] = entry.user_name
        return DeviceIdentity(
            kind="camera", driver="genicam",
            vendor=read("DeviceVendorName", default=entry.vendor),
            model=read("DeviceModelName", default=entry.model),
            serial=read("DeviceSerialNumber", "DeviceID", default=entry.serial),
            firmware=read("DeviceFirmwareVersion", "DeviceVersion", default=entry.version),
            extra=extra)

    # -- features ----------------------------------------------------------------------------

    def _require_entry(self) -> DeviceEntry:
        if self.entry is None or self._ia is None:
            raise CameraError("camera is not open", device=self.name)
        return self.entry

    @property
    def acquirer(self) -> Any:
        """The harvesters ImageAcquirer, re-created if a re-enumeration invalidated it."""
        entry = self._require_entry()
        if self._generation == self.manager.generation and self._ia.is_valid():
            return self._ia
        with self._lock:  # lock order everywhere: self._lock, then GENAPI_LOCK
            if self._generation != self.manager.generation or not self._ia.is_valid():
                found = [d for d in self.manager.devices() if d.id == entry.id]
                if not found:
                    raise CameraDisconnected(f"no longer listed by "
                                             f"{entry.producer or 'its producer'}; call "
                                             f"reconnect()", device=self.label)
                self._attach(found[0])  # re-enumeration may have reset the device:
                self._configure()       # configure it again
            return self._ia

    @property
    def features(self) -> NodeMapFeatures:
        _ = self.acquirer
        assert self._features is not None
        return self._features

    def get(self, feature: str) -> Any:
        return self.features.get(feature)

    def set(self, feature: str, value: Any) -> None:
        self.features.set(feature, value)

    def execute(self, feature: str) -> None:
        self.features.execute(feature)

    def feature_info(self, feature: str) -> FeatureInfo:
        return self.features.info(feature)

    def snapshot(self) -> dict[str, Any]:
        return self.features.snapshot()

    def diff(self, before: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Features changed since ``before`` (a :meth:`snapshot`)."""
        return diff_snapshots(before, self.snapshot())

    # -- bandwidth ---------------------------------------------------------------------------

    def throughput(self) -> CameraThroughput:
        """What this camera will send on its link (:func:`.bandwidth.read_throughput`):
        ``DeviceLinkThroughputLimit`` when on, else ``PayloadSize`` x frame rate with GVSP
        overhead; a ConfigError naming the features when neither can be read."""
        features = self.features  # before GENAPI_LOCK: it may take self._lock (lock order)
        with GENAPI_LOCK:
            return read_throughput(features, device=self.label,
                                   field=f"{self.name}.transport.link_throughput_limit")

    def stream_statistics(self) -> dict[str, int]:
        """The producer's frame and packet counters of this camera's data stream
        (:func:`.bandwidth.stream_statistics`; only those it reports), plus
        ``incomplete_discarded``: incomplete buffers harvesters dropped since the device was
        attached."""
        acquirer = self.acquirer  # before GENAPI_LOCK, as above
        with GENAPI_LOCK:
            out = stream_statistics(acquirer, device=self.label)
        if self._incomplete is not None:
            out["incomplete_discarded"] = int(self._incomplete.count)
        return out

    # -- acquisition -------------------------------------------------------------------------

    @property
    def is_streaming(self) -> bool:
        return self._streaming and self._ia is not None and bool(self._ia.is_acquiring())

    def start(self) -> None:
        with self._lock:
            ia = self.acquirer
            if ia.is_acquiring():
                self._streaming = True
                return
            ia.num_buffers = max(self.settings.num_buffers, ia.min_num_buffers)
            try:
                with GENAPI_LOCK:
                    ia.start()
            except (gt.GenericException, ga.GenericException) as exc:
                raise self._transport_error("starting acquisition", exc) from None
            self._streaming = True

    def stop(self) -> None:
        with self._lock:
            ia = self._ia
            self._streaming = False
            if ia is None or not ia.is_valid() or not ia.is_acquiring():
                return
            with GENAPI_LOCK:
                ia.stop()

    def trigger(self) -> None:
        """Execute ``TriggerSoftware`` (the camera must be in ``TriggerMode = On``)."""
        self.features.execute("TriggerSoftware")

    def _software_triggered(self) -> bool:
        f = self.features
        with GENAPI_LOCK:
            if not f.is_available("TriggerMode") or f.get("TriggerMode") != "On":
                return False
            return not f.is_available("TriggerSource") or f.get("TriggerSource") == "Software"

    def _readback(self) -> dict[str, float | None]:
        """ExposureTime, Gain and DeviceTemperature as the node map reports them now."""
        out: dict[str, float | None] = {}
        f = self.features
        with GENAPI_LOCK:
            for feature in ("ExposureTime", "Gain", "DeviceTemperature"):
                value = None
                if f.is_available(feature):
                    try:
                        value = float(f.get(feature))
                    except (FeatureError, TypeError, ValueError):
                        value = None
                out[feature] = value
        return out

    def grab(self, n: int = 1, timeout_s: float | None = None) -> FrameStack:
        """``n`` frames as a stack (a single or burst grab; triggered when TriggerMode is On).

        Starts and stops acquisition around the grab unless :meth:`start` was called. Each frame
        is fetched with ``timeout_s`` (default: the station's ``timeout_s``), retried
        ``retries`` times; then :class:`CameraTimeout`. A device that vanished raises
        :class:`CameraDisconnected`.
        """
        if n < 1:
            raise ValueError(f"grab needs n >= 1, got {n}")
        timeout = self.settings.timeout_s if timeout_s is None else float(timeout_s)
        with self._lock:
            own_stream = not self.is_streaming
            if own_stream:
                self.start()
            try:
                return self._grab(n, timeout)
            finally:
                if own_stream:
                    self.safe_state()

    def _grab(self, n: int, timeout: float) -> FrameStack:
        t0 = time.perf_counter()
        triggered = self._software_triggered()
        readback = self._readback()
        incomplete_before = self._incomplete.count
        frames: np.ndarray | None = None  # preallocated once the first frame's shape is known
        metas: list[FrameMeta] = []
        retried = 0
        cfa: str | None = None
        for i in range(n):
            if self._halt.is_set():
                raise CameraError(f"grab stopped after {i} of {n} frames: the station went to "
                                  f"its safe state", device=self.label)
            frame, meta, spec, tries = self._fetch_one(
                i, n, timeout, triggered, readback, None if frames is None else frames[i])
            if frames is None:
                frames = np.empty((n, *frame.shape), frame.dtype)
                frames[0] = frame
            retried += tries
            cfa = spec.cfa
            metas.append(meta)
        assert frames is not None
        stack = FrameStack(frames, tuple(metas), cfa)
        report = GrabReport(n, tuple(stack.frame_id_gaps()),
                            self._incomplete.count - incomplete_before, retried,
                            time.perf_counter() - t0)
        self.last_grab = report
        if not report.clean:
            log.warning("%s: grab of %d frames: frame-id gaps %s, %d incomplete buffers dropped",
                        self.label, n, list(report.frame_id_gaps), report.incomplete)
        return stack

    def _fetch_one(self, i: int, n: int, timeout: float, triggered: bool,
                   readback: dict[str, float | None], out: np.ndarray | None
                   ) -> tuple[np.ndarray, FrameMeta, PixelFormat, int]:
        ia = self.acquirer
        attempts = 1 + self.settings.retries
        discarded_before = self._incomplete.count
        for attempt in range(attempts):
            if triggered:
                self.trigger()
            try:
                raw = ia.fetch(timeout=timeout, is_raw=True)
            except gt.TimeoutException:
                if not self._device_alive():
                    raise self._vanished(f"no frame within {timeout:g} s (frame {i + 1} of {n})",
                                         None) from None
                log.warning("%s: no frame within %g s (frame %d of %d, attempt %d of %d)",
                            self.label, timeout, i + 1, n, attempt + 1, attempts)
                continue
            except (gt.GenericException, ga.GenericException) as exc:
                raise self._transport_error(f"fetching frame {i + 1} of {n}", exc) from None
            discarded = self._incomplete.count - discarded_before  # across retries too
            try:
                frame, meta, spec = self._decode(raw, readback, out, discarded)
            finally:
                try:
                    raw.parent.queue_buffer(raw)
                except gt.GenericException as exc:
                    log.debug("%s: re-queueing a buffer failed: %s", self.label, exc)
            return frame, meta, spec, attempt
        mode = "software trigger" if triggered else "free run"
        raise CameraTimeout(f"no frame within {timeout:g} s after {attempts} attempt"
                            f"{'s' if attempts > 1 else ''} (frame {i + 1} of {n}, {mode})",
                            device=self.label)

    def _decode(self, raw: Any, readback: dict[str, float | None], out: np.ndarray | None,
                discarded: int = 0) -> tuple[np.ndarray, FrameMeta, PixelFormat]:
        """Copy the pixels out of the GenTL buffer and build the frame's metadata
        (``discarded``: incomplete buffers the transport dropped while fetching this one)."""
        code = int(raw.pixel_format)
        spec = BY_CODE.get(code)
        if spec is None:
            raise CameraError(f"unsupported pixel format {code:#010x} from the camera; "
                              f"set PixelFormat to one of {', '.join(sorted(BY_CODE_NAMES))}",
                              device=self.label)
        try:
            padding = int(raw.padding_x)
        except gt.GenericException:
            padding = 0
        width, height = int(raw.width), int(raw.height)
        if out is not None and out.shape[:2] != (height, width):
            raise CameraError(f"frame size changed during a grab: {out.shape[1]}x{out.shape[0]} "
                              f"-> {width}x{height}", device=self.label)
        frame = unpack(raw.raw_buffer, spec, width, height, offset=int(raw.image_offset),
                       padding_x=padding, out=out)
        chunks = self._chunks(raw) if self.settings.chunks else {}
        try:
            frame_id = int(raw.frame_id)
        except gt.GenericException:
            frame_id = -1
        try:
            stamp = int(raw.timestamp_ns) / 1e9
        except gt.GenericException:
            stamp = chunks["Timestamp"] / 1e9 if chunks.get("Timestamp") is not None \
                else time.monotonic()
        meta = FrameMeta(
            frame_id=int(chunks["FrameID"]) if chunks.get("FrameID") is not None else frame_id,
            timestamp_s=stamp,
            exposure_us=chunks.get("ExposureTime", readback.get("ExposureTime")),
            gain_db=chunks.get("Gain", readback.get("Gain")),
            temperature_c=chunks.get("DeviceTemperature", readback.get("DeviceTemperature")),
            pixel_format=spec.name,
            incomplete_discarded=discarded)
        return frame, meta, spec

    def _chunks(self, raw: Any) -> dict[str, float]:
        """Chunk values of this buffer (parsed under GENAPI_LOCK: it writes the node map)."""
        out: dict[str, float] = {}
        f = self._features
        assert f is not None
        with GENAPI_LOCK:
            try:
                self._ia._update_chunk_data(buffer=raw, is_manual=True)
            except (gt.GenericException, ga.GenericException) as exc:
                log.debug("%s: chunk data not parsed: %s", self.label, exc)
                return out
            for entry, feature in CHUNKS.items():
                if f.is_available(feature):
                    try:
                        out[entry] = float(f.get(feature))
                    except FeatureError:
                        continue
        return out

    # -- faults and recovery ---------------------------------------------------------------

    def _device_alive(self) -> bool:
        """Whether the device still answers: its GenTL access status and an uncached read."""
        ia = self._ia
        if ia is None or not ia.is_valid():
            return False
        try:
            if int(ia.device.module.access_status) not in _OPEN_STATUS:
                return False
            with GENAPI_LOCK:
                nm = ia.remote_device.node_map
                probe = "PayloadSize" if nm.has_node("PayloadSize") else "Width"
                nm.get_node(probe).get_value(False, True)  # Verify=False, IgnoreCache=True
        except (gt.GenericException, ga.GenericException, AttributeError):
            return False
        return True

    def _vanished(self, what: str, exc: BaseException | None) -> CameraDisconnected:
        cause = f" ({type(exc).__name__}: {str(exc).splitlines()[0]})" if exc and str(exc) else ""
        entry = self.entry
        where = f"{entry.id} via {entry.producer}" if entry else "its producer"
        return CameraDisconnected(f"device disappeared ({where}): {what}{cause}; "
                                  f"call reconnect() once it is back", device=self.label)

    def _transport_error(self, what: str, exc: BaseException) -> CameraError:
        if not self._device_alive():
            return self._vanished(what, exc)
        text = str(exc).splitlines()[0] if str(exc) else ""
        return CameraError(f"{what} failed: {type(exc).__name__}: {text}", device=self.label)

    def reconnect(self) -> None:
        """Re-enumerate the producers and reopen the same device by serial number.

        The dead acquirer is destroyed first, then the producers re-enumerate (``update``
        invalidates every acquirer, docs/standards.md#harvesters-and-genapi-traps, trap 9), then the
        device is found by serial and the station's settings are applied again. Raises
        :class:`CameraDisconnected` if it is absent.
        """
        with self._lock:
            entry = self.entry
            if entry is None:
                self.open()
                return
            self._streaming = False
            self.manager.release(entry, self._owner)
            self.manager.discard(entry)
            self.manager.update()
            found = [d for d in self.manager.devices()
                     if d.serial == entry.serial and d.producer == entry.producer]
            if not found:
                listed = "; ".join(d.label() for d in self.manager.devices()) or "none"
                raise CameraDisconnected(f"s/n {entry.serial} not found after re-enumeration; "
                                         f"devices: {listed}", device=self.label)
            self._attach(found[0])
            self._configure()


BY_CODE_NAMES = tuple(spec.name for spec in BY_CODE.values())


__all__ = ["BY_CODE_NAMES", "CHUNKS", "TRANSPORT_FEATURES", "GenICamCamera", "GenICamSettings",
           "GrabReport", "TransportSettings"]
