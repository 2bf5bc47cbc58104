"""The course notebooks and the mybinder.org environment stay consistent with the package.

* ``binder/requirements.txt`` pins exact versions (the ones the notebooks were tested with) that
  satisfy ``pyproject.toml``'s ranges, covers every runtime dependency and the app / real-network
  extras, takes CPU-only torch from the PyTorch CPU index, and installs the package itself;
* ``binder/runtime.txt`` pins a Python that ``requires-python`` allows;
* every ``notebooks/*.ipynb`` is listed in the README's table of contents, and the README's
  Binder badges point at files that exist;
* every notebook is committed without outputs and follows the course conventions (learning goals,
  collapsible answers, assert cells, offline charts set up in the first code cell);
* the notebook hook of ``notebooks/conftest.py`` recognises warnings in cell outputs.

The notebooks themselves are executed by nbval (``pytest`` runs ``notebooks/`` too).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_lines() -> list[str]:
    lines = []
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _pins() -> dict[str, Version]:
    pins = {}
    for line in _requirement_lines():
        m = PIN.match(line)
        if m:
            pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _runtime_python() -> str:
    """The X.Y of binder/runtime.txt (e.g. "3.11")."""
    text = (BINDER / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(3\.\d+)(\.\d+)?", text)
    assert m, f"binder/runtime.txt is {text!r}: expected e.g. 'python-3.11'"
    return m.group(1)


def _pyproject_specs(groups: tuple[str, ...] | None = None) -> dict[str, SpecifierSet]:
    """name -> combined specifier over the dependencies and the optional groups (all if None).

    Requirements whose environment marker does not hold on Binder's Python are left out.
    """
    env = {"python_version": _runtime_python(), "python_full_version": _runtime_python() + ".0"}
    project = _pyproject()["project"]
    extras = project.get("optional-dependencies", {})
    reqs = list(project["dependencies"])
    for group, items in extras.items():
        if groups is None or group in groups:
            reqs += items
    specs: dict[str, SpecifierSet] = {}
    self_name = canonicalize_name(project["name"])
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name != self_name:
            specs[name] = specs.get(name, SpecifierSet()) & req.specifier
    return specs


def _notebook(path: Path) -> dict:
    return json.loads(path.read_text())


def _sources(nb: dict, kind: str | None = None) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if kind is None or c["cell_type"] == kind]


# ---------------------------------------------------------------------- binder
def test_binder_lines_are_exact_pins_options_or_the_package() -> None:
    for line in _requirement_lines():
        ok = PIN.match(line) or line.startswith("--") or line in (".", "-e .")
        assert ok, f"binder/requirements.txt: {line!r} is not name==version, an option or '.'"


def test_binder_pins_satisfy_pyproject_ranges() -> None:
    pins = _pins()
    specs = _pyproject_specs()
    checked = 0
    for name, version in pins.items():
        if name in specs:
            checked += 1
            assert specs[name].contains(version, prereleases=True), (
                f"binder pins {name}=={version} but pyproject.toml requires {name}{specs[name]}"
            )
    assert checked >= 10, f"only {checked} binder pins are pyproject dependencies"


def test_binder_pins_every_runtime_app_and_realnet_dependency() -> None:
    pins = _pins()
    needed = _pyproject_specs(groups=("app", "realnets"))
    missing = sorted(set(needed) - set(pins))
    assert not missing, f"binder/requirements.txt does not pin {missing} (pyproject dependencies)"


def test_binder_torch_is_the_cpu_wheel_from_the_cpu_index() -> None:
    lines = _requirement_lines()
    version = _pins()["torch"]
    assert version.local == "cpu", f"torch=={version}: expected a +cpu build"
    index = [ln for ln in lines if ln.startswith(("--extra-index-url", "--index-url"))]
    assert any(ln.split()[-1].rstrip("/") == CPU_INDEX for ln in index), (
        f"binder/requirements.txt needs --extra-index-url {CPU_INDEX} for torch=={version}"
    )
    assert lines.index(index[0]) < next(i for i, ln in enumerate(lines) if ln.startswith("torch=="))


def test_binder_installs_the_package_from_the_repository() -> None:
    lines = _requirement_lines()
    assert "." in lines or "-e ." in lines, "binder/requirements.txt must install the package ('.')"
    assert (ROOT / "pyproject.toml").exists()


def test_binder_runtime_python_is_allowed_by_requires_python() -> None:
    version = _runtime_python()
    allowed = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert allowed.contains(Version(version + ".0")), (
        f"runtime.txt pins Python {version} but pyproject requires-python is {allowed}"
    )


# ---------------------------------------------------------------------- README
def test_every_notebook_is_in_the_readme_table_of_contents() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((notebooks/[^)\s#?]+\.ipynb)\)", readme))
    assert NOTEBOOKS, "no notebooks found"
    missing = [f"notebooks/{p.name}" for p in NOTEBOOKS if f"notebooks/{p.name}" not in linked]
    assert not missing, f"README.md's table of contents does not link {missing}"
    stale = sorted(p for p in linked if not (ROOT / p).exists())
    assert not stale, f"README.md links notebooks that do not exist: {stale}"


def test_readme_binder_badges_point_at_existing_files() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"https://mybinder\.org/v2/gh/[^)\s]*\?urlpath=([^)\s]+)", readme)
    lab = [t for t in targets if t.startswith("lab/tree/")]
    voila = [t for t in targets if t.startswith("voila/render/")]
    assert lab and voila, "README.md needs a JupyterLab and a Voilà mybinder.org badge"
    for t in lab + voila:
        path = t.split("/", 2)[2]
        assert (ROOT / path).exists(), f"badge target {path} does not exist"
    assert "notebooks/01_start_here.ipynb" in lab[0]
    assert voila[0].endswith("dnc_interactive/app/dashboard.ipynb")


# ---------------------------------------------------------------------- notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = _notebook(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: strip them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has a count"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} stores widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_follows_the_course_conventions(path: Path) -> None:
    nb = _notebook(path)
    markdown = "\n".join(_sources(nb, "markdown"))
    code = _sources(nb, "code")
    assert re.search(r"^#\s+\d+\.", markdown, re.M), f"{path.name}: title '# N. ...' missing"
    assert "Learning goals" in markdown, f"{path.name}: no 'Learning goals'"
    assert "<details>" in markdown and "<summary>" in markdown, f"{path.name}: no <details> answer"
    assert any(re.search(r"^\s*assert\b", s, re.M) for s in code), f"{path.name}: no assert cell"
    assert code and "enable_offline()" in code[0], f"{path.name}: enable_offline() not in cell 1"
    assert "set_num_threads(1)" in code[0], f"{path.name}: torch.set_num_threads(1) not in cell 1"


# ---------------------------------------------------------------------- the warning hook
def _hook_module():
    spec = importlib.util.spec_from_file_location("course_conftest", ROOT / "notebooks/conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_hook_flags_warnings_and_stderr_only() -> None:
    find = _hook_module().warning_outputs
    warn = {"output_type": "stream", "name": "stderr", "text": "x.py:2: UserWarning: careful\n"}
    printed = {"output_type": "stream", "name": "stdout", "text": "RuntimeWarning: overflow\n"}
    quiet = {"output_type": "stream", "name": "stdout", "text": "loss 0.0109 (no warnings)\n"}
    chart = {"output_type": "display_data", "data": {"text/plain": "UserWarning: in a repr"}}
    assert find([warn]) == [warn["text"]]
    assert find([printed]) == [printed["text"]]
    assert find([quiet, chart]) == []
    assert find([{"output_type": "stream", "name": "stderr", "text": "  \n"}]) == []
    assert find(None) == []
