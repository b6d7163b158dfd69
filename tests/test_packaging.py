"""What `pip install .` installs: the library alone (fastrnn/, no
experiments, benchmarks or tests, no console scripts), requiring torch only,
at the version of fastrnn/version.py. setup.py's build_py and egg_info steps
lay out the wheel's Python files and metadata without compiling anything."""

import subprocess
import sys
from pathlib import Path

import fastrnn

ROOT = Path(__file__).resolve().parent.parent


def _setup(*args):
    done = subprocess.run(
        [sys.executable, str(ROOT / "setup.py"), "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_wheel_holds_only_the_library(tmp_path):
    _setup("build_py", "--build-lib", str(tmp_path / "lib"))
    files = sorted(
        p.relative_to(tmp_path / "lib").as_posix()
        for p in (tmp_path / "lib").rglob("*")
        if p.is_file()
    )
    assert files, "build_py copied nothing"
    outside = [f for f in files if not f.startswith("fastrnn/")]
    assert not outside, f"the wheel would hold more than the library: {outside}"
    assert "fastrnn/ops.py" in files and "fastrnn/modules.py" in files


def test_metadata_requires_torch_only_and_declares_no_scripts(tmp_path):
    _setup("egg_info", "--egg-base", str(tmp_path))
    (info,) = tmp_path.glob("*.egg-info")
    assert (info / "requires.txt").read_text().split() == ["torch"]
    assert not (info / "entry_points.txt").exists()
    assert (info / "top_level.txt").read_text().split() == ["fastrnn"]
    version = next(
        line.split(": ", 1)[1]
        for line in (info / "PKG-INFO").read_text().splitlines()
        if line.startswith("Version: ")
    )
    assert version == fastrnn.__version__
