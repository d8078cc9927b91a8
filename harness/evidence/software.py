"""The identity of the software that judged a run: version, git commit, dirty flag, code hash.

A version number says little when the analysis code can be edited in place, so every record
also carries a sha256 over what actually ran: the files of the installed ``harness`` package
(``*.py`` and the package data ``*.xml`` / ``*.yaml``), the qualification suites
(``tests_hil``, when found beside the package as in a checkout) and the limit spec. Each file
enters as ``<label>/<relative path> NUL <sha256 of its bytes>`` in sorted order, the spec as
``limits NUL <its sha256>``, so any change to an analysis file, a suite or a limit changes the
hash, while the checkout's location does not.

When the package is tracked in a git checkout, the commit and a dirty flag are added; the flag
is set by uncommitted changes, tracked or untracked (ignored files aside), under the hashed
folders only, so an edit elsewhere in the checkout (the README) does not mark the code
dirty. Without git, or outside a checkout, both are simply absent.

The package and suites are hashed once per process (:func:`code_state` is cached): a run
hashes them at its start, and a later edit of the tree does not change that run's identity.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import harness

#: File types hashed: the code, and the package data it reads (GenICam XML, YAML).
HASHED_SUFFIXES = (".py", ".xml", ".yaml")
SUITES_FOLDER = "tests_hil"
GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CodeState:
    """The hashed code of one package (and suites) folder, as found when first asked."""

    entries: tuple[str, ...]
    commit: str | None
    dirty: bool | None


@dataclass(frozen=True)
class SoftwareIdentity:
    """What ran: the package version, the code sha256, and the git state if in a checkout."""

    version: str
    sha256: str
    files: int
    commit: str | None = None
    dirty: bool | None = None

    def as_software(self) -> dict[str, str]:
        """The ``software`` entries of a run record (absent git fields are left out)."""
        out = {"harness": self.version, "harness.sha256": self.sha256,
               "harness.files": str(self.files)}
        if self.commit is not None:
            out["harness.commit"] = self.commit
        if self.dirty is not None:
            out["harness.dirty"] = "true" if self.dirty else "false"
        return out


def package_dir() -> Path:
    """The folder of the ``harness`` package that is imported (installed or a checkout)."""
    return Path(harness.__file__).resolve().parent


def suites_dir(package: Path) -> Path | None:
    """``tests_hil`` beside the package (a checkout or editable install), else None."""
    candidate = package.parent / SUITES_FOLDER
    return candidate if candidate.is_dir() else None


def _hashed_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.suffix in HASHED_SUFFIXES and p.is_file()
                  and not any(part == "__pycache__" or part.startswith(".")
                              for part in p.relative_to(root).parts))


def _entries(label: str, root: Path) -> list[str]:
    return [f"{label}/{p.relative_to(root).as_posix()}\0"
            f"{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in _hashed_files(root)]


def _git(cwd: Path, *args: str) -> str | None:
    """``git args`` in ``cwd``: its stdout, or None when git is missing or says no."""
    try:
        # no optional locks: a status must never hold index.lock against a concurrent commit
        done = subprocess.run(["git", "--no-optional-locks", "-C", str(cwd), *args],
                              capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _git_state(package: Path, suites: Path | None) -> tuple[str | None, bool | None]:
    # only when the package itself is tracked (not a site-packages copy inside some checkout)
    if _git(package, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None
    head = _git(package, "rev-parse", "HEAD")
    paths = [str(package), *([str(suites)] if suites is not None else [])]
    status = _git(package, "status", "--porcelain", "--untracked-files=normal", "--", *paths)
    commit = head.strip() if head else None
    return commit, (bool(status.strip()) if status is not None else None)


@cache
def code_state(package: Path, suites: Path | None) -> CodeState:
    """Hash entries and git state of ``package`` and ``suites``; computed once per process."""
    entries = _entries("harness", package)
    if suites is not None:
        entries += _entries(SUITES_FOLDER, suites)
    commit, dirty = _git_state(package, suites)
    return CodeState(tuple(sorted(entries)), commit, dirty)


def software_identity(limits_sha256: str = "", *, package: Path | None = None,
                      suites: Path | None = None) -> SoftwareIdentity:
    """The identity of the running harness with the limit spec whose sha256 is given.

    ``package`` defaults to the imported ``harness`` package and ``suites`` to the
    ``tests_hil`` folder beside it (a test points both at a copy of the tree).
    """
    pkg = (package or package_dir()).resolve()
    state = code_state(pkg, (suites.resolve() if suites is not None else suites_dir(pkg)))
    lines = [*state.entries, *([f"limits\0{limits_sha256}"] if limits_sha256 else [])]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return SoftwareIdentity(harness.__version__, digest, len(state.entries), state.commit,
                            state.dirty)


__all__ = ["HASHED_SUFFIXES", "CodeState", "SoftwareIdentity", "code_state", "package_dir",
           "software_identity", "suites_dir"]
