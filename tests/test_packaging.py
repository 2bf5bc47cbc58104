"""The built wheel, installed into a fresh virtual environment, carries everything the package
needs at run time: the widget's JS/CSS, the app notebook, the Voila template, ``py.typed``.

The wheel is built offline (``pip wheel --no-build-isolation``) from a copy of the source, so
nothing is written into the checkout; the fresh venv has no dependencies (no torch), so the
check there only reads installed files and metadata and never imports the package.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dnc_interactive"

#: Files the package reads at run time (paths inside the installed package).
REQUIRED = [
    "py.typed",
    "widgets/live_chart.js",
    "widgets/live_chart.css",
    "app/dashboard.ipynb",
    "app/voila/templates/dnc/conf.json",
    "app/voila/templates/dnc/index.html.j2",
]

pytestmark = pytest.mark.slow


def _source_version() -> str:
    """``dnc_interactive.__version__`` read from the source, without importing it."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("dnc_interactive/__init__.py defines no __version__")


def _source_files() -> set[str]:
    """Every file of the source package (relative to it); bytecode, caches, hidden files and
    editor checkpoints left out (as in the copy the wheel is built from)."""
    files = set()
    for p in PACKAGE.rglob("*"):
        rel = p.relative_to(PACKAGE)
        if not p.is_file() or p.suffix in {".pyc", ".pyo"}:
            continue
        if any(part == "__pycache__" or part.startswith(".") for part in rel.parts):
            continue
        files.add(rel.as_posix())
    return files


def _run(*args: str | Path, cwd: Path) -> None:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the fresh venv's python with the wheel installed)."""
    pytest.importorskip("setuptools", minversion="77")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        PACKAGE,
        src / PACKAGE.name,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*"),
    )
    dist = tmp / "dist"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--no-cache-dir",
        "-q",
        "-w",
        dist,
        src,
        cwd=tmp,
    )
    wheels = sorted(dist.glob("dnc_interactive-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}, got {wheels}"
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        "--no-cache-dir",
        "-q",
        wheels[0],
        cwd=tmp,
    )
    return wheels[0], python


# Runs in the fresh venv with -I (no cwd, no PYTHON* variables on sys.path): reports where
# the package is installed, what it holds and its metadata, without importing it.
_PROBE = textwrap.dedent(
    """
    import importlib.metadata as md, importlib.util, json, sys
    from pathlib import Path
    dist = md.distribution("dnc-interactive")
    spec = importlib.util.find_spec("dnc_interactive")
    pkg = Path(spec.origin).parent
    files = sorted(
        p.relative_to(pkg).as_posix()
        for p in pkg.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    print(json.dumps({
        "prefix": sys.prefix,
        "package": str(pkg),
        "files": files,
        "version": dist.version,
        "scripts": sorted(e.name for e in dist.entry_points if e.group == "console_scripts"),
        "torch": importlib.util.find_spec("torch") is not None,
    }))
    """
)


def test_wheel_metadata_version_is_the_source_version(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as zf:
        metadata = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        assert len(metadata) == 1, metadata
        text = zf.read(metadata[0]).decode("utf-8")
    versions = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Version:")
    ]
    assert versions == [_source_version()], (versions, _source_version())


def test_installed_wheel_carries_the_runtime_files(built):
    _, python = built
    venv = python.parents[1]
    proc = subprocess.run(
        [str(python), "-I", "-c", _PROBE],
        cwd=venv,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    # the fresh venv sees its own install, not the checkout or the dev environment
    assert Path(info["prefix"]).resolve() == venv.resolve()
    assert Path(info["package"]).resolve().is_relative_to(venv.resolve()), info["package"]
    assert not info["torch"], "the fresh venv must not see the dev environment's packages"
    assert info["version"] == _source_version()
    assert "dnc-interactive" in info["scripts"]

    installed = set(info["files"])
    missing = [f for f in REQUIRED if f not in installed]
    assert not missing, f"the wheel lacks {missing}: add them to [tool.setuptools.package-data]"
    # nothing in the source package is left out (a new data file needs a package-data entry,
    # a new sub-package an __init__.py)
    left_out = sorted(_source_files() - installed)
    assert not left_out, f"the wheel lacks {left_out}: package-data or an __init__.py misses them"
