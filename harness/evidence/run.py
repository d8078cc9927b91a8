"""One run's evidence in one object: journal first, then Allure, then the records database.

The plugin (or any runner) calls :class:`RunEvidence` as the run goes. Every call journals
first (fsynced), so a crash leaves everything up to it; Allure steps and attachments follow;
at :meth:`RunEvidence.finish` the journal is closed with ``run_end``, rebuilt into a
:class:`~harness.evidence.model.RunRecord` and stored (hash-chained and, with the station's
key, signed) in the records database. The record's ``software`` names the code that ran
(:func:`run_software`). The signing key is loaded before the journal opens, so a run whose key
is missing or open to others stops before it starts; the key never reaches the evidence.
If any evidence write fails, the run's outcome is ERROR: a store that fails after ``run_end``
appends an ``error`` event of kind ``evidence`` so that even the journal says ERROR.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import allure

from harness.errors import ConfigError, EvidenceError
from harness.evidence import allure as ev
from harness.evidence.journal import Journal, new_run_id, rebuild
from harness.evidence.model import Artefact, RunRecord, Unjudged
from harness.evidence.records import RecordStore, StoredRun
from harness.evidence.records.signing import resolve_signer
from harness.evidence.software import software_identity
from harness.measurement import Measurement, Outcome
from harness.paths import atomic_write_bytes, safe_component

SOFTWARE = ("camera-qual-harness", "numpy", "scipy", "opencv-python-headless", "harvesters",
            "genicam", "pyvisa", "pyvisa-py", "pyserial", "pytest", "allure-pytest",
            "colour-science", "sqlalchemy", "matplotlib", "tifffile")


def software_versions(packages: Iterable[str] = SOFTWARE) -> dict[str, str]:
    """Installed versions of the packages the results depend on, plus Python itself."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_software(limits_hash: str = "") -> dict[str, str]:
    """A record's ``software``: the package versions and the harness's identity (version,
    code sha256 over the package, the suites and the limit spec, git commit and dirty flag;
    see :mod:`harness.evidence.software`)."""
    return {**software_versions(), **software_identity(limits_hash).as_software()}


class RunEvidence:
    """Journal + Allure + records for one run (see the module docstring)."""

    def __init__(self, out_dir: str | Path, *, station: str, dut: Mapping[str, Any],
                 operator: str = "", limits_file: str = "", limits_hash: str = "",
                 software: Mapping[str, str] | None = None,
                 devices: Sequence[Mapping[str, Any]] = (),
                 calibrations: Sequence[Mapping[str, Any]] = (),
                 records: str | Path | None = None, run_id: str | None = None,
                 characterisation: bool = False, rejudged_from: str = "",
                 signing_key: str | Path | None = None) -> None:
        """``signing_key``: the station's private key file (``settings.signing_key``);
        None uses ``$HARNESS_SIGNING_KEY`` if set, else the run is stored unsigned."""
        self.signer = resolve_signer(signing_key)
        self.run_id = safe_component(run_id, "run_id") if run_id else new_run_id()
        self.dir = Path(out_dir) / self.run_id
        self.records = records
        self.journal = Journal(self.dir / "journal.jsonl", self.run_id)
        self.stored: StoredRun | None = None
        self.output_failures: list[Any] = []
        self.journal.run_start(station=station, dut=dut, operator=operator,
                               software=(run_software(limits_hash) if software is None
                                         else software),
                               limits_file=limits_file, limits_hash=limits_hash,
                               devices=devices, calibrations=calibrations,
                               characterisation=characterisation,
                               rejudged_from=rejudged_from)

    def test_start(self, test_id: str, *, title: str = "", family: str = "") -> None:
        self.journal.test_start(test_id, title=title, family=family)
        if family in ev.FAMILIES:
            ev.apply_family(family)

    def capture(self, test_id: str, frames: Iterable[str], capture_set: str = "",
                sequence: str = "") -> None:
        self.journal.capture(test_id, frames=frames, capture_set=capture_set,
                             sequence=sequence)

    def sequence(self, test_id: str, event: str, **payload: Any) -> None:
        self.journal.sequence(test_id, event, **payload)

    def note(self, message: str, *, test_id: str = "", **facts: Any) -> None:
        self.journal.note(message, test_id=test_id, **facts)

    def reading(self, test_id: str, role: str, method: str, value: Mapping[str, Any]) -> None:
        self.journal.reading(test_id, role, method, value)

    def unjudged(self, limits: Sequence[Unjudged]) -> None:
        self.journal.unjudged(limits)

    def measurement(self, m: Measurement, test_id: str = "") -> Measurement:
        self.journal.measurement(m, test_id)
        ev.report_measurement(m)
        return m

    def attach(self, test_id: str, data: bytes, name: str, *, kind: str = "plot",
               ext: str = "png") -> Path:
        """Keep a plot/thumbnail (by hash) beside the journal, journal it, attach it."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.dir / "artefacts" / f"{sha}.{ext}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                atomic_write_bytes(path, data)
        except OSError as exc:
            self.journal.error(f"cannot keep {name}: {exc.strerror}", test_id=test_id,
                               kind="evidence")
            raise EvidenceError(f"{path}: cannot write: {exc.strerror}") from exc
        self.journal.artefact(test_id, Artefact(sha, kind, name, str(path), test_id))
        if ext == "png":
            ev.attach_png(data, name)
        elif ext == "json":
            allure.attach(data, name=name, attachment_type=allure.attachment_type.JSON)
        elif ext == "csv":
            allure.attach(data, name=name, attachment_type=allure.attachment_type.CSV)
        return path

    def error(self, message: str, *, test_id: str = "", kind: str = "station",
              outcome: Outcome = Outcome.ERROR) -> None:
        self.journal.error(message, test_id=test_id, kind=kind, outcome=outcome)

    def test_end(self, test_id: str, outcome: Outcome, message: str = "") -> None:
        self.journal.test_end(test_id, outcome, message=message)

    def finish(self, outcome: Outcome, reason: str = "",
               alluredir: str | Path | None = None) -> RunRecord:
        """``run_end``, rebuild, store (and write the Allure environment into ``alluredir``);
        the record's outcome is ERROR if any of that evidence was lost."""
        try:
            self.journal.run_end(outcome, reason=reason)
        except EvidenceError:
            self.journal.close()
            raise
        record = rebuild(self.journal.path)
        if alluredir is not None:
            try:
                ev.write_environment(alluredir, ev.run_environment(record))
            except OSError as exc:
                self.journal.error(f"allure environment: {exc}", kind="evidence")
                record = record.with_outcome(Outcome.ERROR, f"allure environment: {exc}")
        if self.records is not None:
            try:
                with RecordStore(self.records) as store:
                    self.stored = store.add_run(record, signer=self.signer)
                    self._publish(store, record)
            except (EvidenceError, ConfigError) as exc:
                self.journal.error(f"records: {exc}", kind="evidence")
                self.journal.close()
                return record.with_outcome(Outcome.ERROR, f"records: {exc}")
        self.journal.close()
        return record

    def _publish(self, store: RecordStore, record: RunRecord) -> None:
        """Hand the stored run to the installed outputs (``harness.outputs``). A failed output
        never changes the verdict and is never silent: it is noted in the journal (``harness
        records publish --retry`` retries it) and kept in :attr:`output_failures`."""
        from harness.evidence.outputs import publish

        self.output_failures = publish(store, record)
        for failure in self.output_failures:
            self.journal.note(f"{failure} (retry with harness records publish --retry)",
                              output=failure.output)


__all__ = ["SOFTWARE", "RunEvidence", "run_software", "software_versions"]
