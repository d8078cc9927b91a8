"""Software identity: a sha256 over the package, the suites and the limit spec, the git commit and
dirty flag in a checkout, absent without one; computed once per process."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import harness
from harness.evidence.software import code_state, package_dir, software_identity


def copy_tree(dest: Path) -> tuple[Path, Path]:
    """A copy of the imported package and of the suites beside it (no caches)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    package = shutil.copytree(package_dir(), dest / "harness", ignore=ignore)
    suites = shutil.copytree(package_dir().parent / "tests_hil", dest / "tests_hil",
                             ignore=ignore)
    return Path(package), Path(suites)


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))


def test_one_changed_byte_of_an_analysis_file_changes_the_hash(tmp_path: Path) -> None:
    a_pkg, a_suites = copy_tree(tmp_path / "a")
    b_pkg, b_suites = copy_tree(tmp_path / "b")
    a = software_identity("ab" * 32, package=a_pkg, suites=a_suites)
    b = software_identity("ab" * 32, package=b_pkg, suites=b_suites)
    assert a.sha256 == b.sha256  # same content elsewhere: same hash
    assert a.files == b.files > 100
    flip_one_byte(b_pkg / "analysis" / "sfr.py")
    code_state.cache_clear()
    changed = software_identity("ab" * 32, package=b_pkg, suites=b_suites)
    assert changed.sha256 != a.sha256 and changed.files == a.files


def test_suites_package_data_and_limit_spec_are_in_the_hash(tmp_path: Path) -> None:
    pkg, suites = copy_tree(tmp_path / "t")
    base = software_identity("ab" * 32, package=pkg, suites=suites)
    assert software_identity("cd" * 32, package=pkg, suites=suites).sha256 != base.sha256
    for edited in (suites / "test_defects.py", pkg / "sim" / "simcam.xml"):
        flip_one_byte(edited)
        code_state.cache_clear()
        again = software_identity("ab" * 32, package=pkg, suites=suites)
        assert again.sha256 != base.sha256, edited
        base = again


def test_outside_a_checkout_there_is_no_commit_and_no_error(tmp_path: Path) -> None:
    pkg, suites = copy_tree(tmp_path / "plain")
    identity = software_identity(package=pkg, suites=suites)
    assert identity.commit is None and identity.dirty is None
    software = identity.as_software()
    assert set(software) == {"harness", "harness.sha256", "harness.files"}
    assert software["harness"] == harness.__version__


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_in_a_checkout_commit_and_dirty_flag(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    pkg, suites = copy_tree(root)
    (root / "README.md").write_text("readme\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "x")
    clean = software_identity(package=pkg, suites=suites)
    assert clean.commit == git(root, "rev-parse", "HEAD") and clean.dirty is False
    assert clean.as_software()["harness.dirty"] == "false"
    (root / "README.md").write_text("edited outside the code\n")
    code_state.cache_clear()
    assert software_identity(package=pkg, suites=suites).dirty is False
    (pkg / "analysis" / "new_module.py").write_text("x = 1\n")  # untracked code counts
    code_state.cache_clear()
    dirty = software_identity(package=pkg, suites=suites)
    assert dirty.dirty is True and dirty.sha256 != clean.sha256


def test_computed_once_per_process(tmp_path: Path) -> None:
    pkg, suites = copy_tree(tmp_path / "once")
    code_state.cache_clear()
    first = software_identity(package=pkg, suites=suites)
    flip_one_byte(pkg / "analysis" / "sfr.py")  # without cache_clear: the run's start state
    assert software_identity(package=pkg, suites=suites) == first
    assert code_state.cache_info().hits >= 1


def test_the_running_harness_has_an_identity() -> None:
    identity = software_identity()
    assert len(identity.sha256) == 64 and identity.files > 100
