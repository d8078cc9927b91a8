"""A stand-in for the pytest child of the station app's tests: writes a journal as the plugin
would (through :class:`harness.evidence.journal.Journal`), fast and scripted by ``mode``.

``python app_fake_child.py EVIDENCE STATION MODE OPERATOR DUT`` with MODE one of ``pass``,
``fail``, ``hang`` (waits for SIGTERM, then journals ABORTED), ``prompt`` (journals the label
prompt note and reads one line from stdin: PASS if it is the camera's serial, else ERROR),
``crash`` (exits 3 before any journal), ``slots`` (two journals, slots A and B; B fails),
``slots4`` (four journals, slots A-D as on stations/sim-4up.yaml: A and B pass, C is
MARGINAL, D fails), ``marginal`` (one MARGINAL limit and one FAIL limit).
"""

from __future__ import annotations

import signal
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import tifffile

from harness.evidence.journal import Journal, new_run_id
from harness.measurement import Measurement, Outcome

CAMERA_SERIAL = "CAM-0001"
TEST = "tests_hil/test_fake.py::test_current"


def journal(evidence: Path, station: str, operator: str, dut: str, slot: str = "") -> Journal:
    run_id = f"{new_run_id()}{'-' + slot if slot else ''}-{uuid.uuid4().hex[:4]}"
    j = Journal(evidence / run_id / "journal.jsonl", run_id)
    who = {"serial": dut or f"{CAMERA_SERIAL}{slot}", "product": "cm12"}
    if slot:
        who["slot"] = slot
    j.run_start(station=station, dut=who, operator=operator)
    return j


def capture(j: Journal, evidence: Path) -> None:
    frame = (np.arange(480 * 640, dtype=np.uint16).reshape(480, 640) % 1024).astype(np.uint16)
    folder = evidence / j.run_id / "captures" / "power_streaming"
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    import hashlib

    data = frame.tobytes()
    sha = hashlib.sha256(data).hexdigest()
    tifffile.imwrite(folder / "frames" / f"{sha}.tiff", frame)
    j.sequence(TEST, "sequence_start", sequence="power_streaming")
    j.capture(TEST, frames=[sha], capture_set=str(folder), sequence="power_streaming")


def judged(j: Journal, value: float, test_id: str = TEST) -> Outcome:
    """PWR-IDLE: at most 0.25 A, MARGINAL above 0.2 A."""
    m = Measurement.judged("module_current_idle_a", value, "A", high=0.25, marginal_high=0.2,
                           limit_id="PWR-IDLE", test_id=test_id)
    j.measurement(m)
    return m.outcome


SLOT_CURRENT = {"A": 0.1, "B": 0.4}
SLOT4_CURRENT = {"A": 0.1, "B": 0.12, "C": 0.22, "D": 0.4}


def main() -> int:
    evidence, station, mode, operator, dut = sys.argv[1:6]
    out = Path(evidence)
    if mode == "crash":
        print("harness: error: the station cannot be opened (fake)", flush=True)
        return 3
    if mode in ("slots", "slots4"):
        currents = SLOT_CURRENT if mode == "slots" else SLOT4_CURRENT
        journals = {s: journal(out, station, operator, "", s) for s in currents}
        for slot, j in journals.items():
            j.test_start(f"{TEST}[{slot}]", title="current")
            capture(j, out)
            outcome = judged(j, currents[slot], f"{TEST}[{slot}]")
            j.test_end(f"{TEST}[{slot}]", outcome)
            j.unjudged([])
            j.run_end(Outcome.PASS)
        return 0
    j = journal(out, station, operator, dut)
    if mode == "prompt":
        j.note("waiting for the DUT label scan", prompt="label", timeout_s=30.0)
        label = sys.stdin.readline().strip()
        if label != CAMERA_SERIAL:
            j.error(f"DUT label mismatch: {label!r}")
            j.run_end(Outcome.ERROR)
            return 1
    j.test_start(TEST, title="current", family="power")
    capture(j, out)
    if mode == "hang":
        def stop(signum: int, frame: object) -> None:
            j.test_end(TEST, Outcome.ABORTED, message="interrupted")
            j.run_end(Outcome.ABORTED, reason="interrupted")
            sys.exit(2)

        signal.signal(signal.SIGTERM, stop)
        time.sleep(60)
        return 0
    outcome = judged(j, 0.4 if mode == "fail" else 0.22 if mode == "marginal" else 0.1)
    if mode == "marginal":
        m = Measurement.judged("module_current_streaming_a", 0.9, "A", high=0.5,
                               limit_id="PWR-STREAM", test_id=TEST)
        j.measurement(m)
        outcome = m.outcome
    j.test_end(TEST, outcome)
    j.unjudged([])
    j.run_end(Outcome.PASS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
