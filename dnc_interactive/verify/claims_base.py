"""The types of ``dnc-interactive verify``'s claims and the helpers they share (theory §5.6).

:class:`Claim` (one checkable statement and its three sizes), :class:`Outcome` (what a claim's
function returns) and :class:`Result` (the checked claim); the registry itself is
:data:`dnc_interactive.verify.claims.CLAIMS`, which re-exports these names.

Layering: imports only the standard library at import time; the helpers import torch, pandas,
altair and the package's trainers when they run.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from dnc_interactive.config import DUFMConfig
    from dnc_interactive.training import Recipe


__all__ = ["SIZES", "Claim", "Outcome", "Result", "Size"]

#: The sizes every claim has.
SIZES: tuple[str, ...] = ("tiny", "quick", "full")

Size = Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What a claim's function returns: the numbers, the verdict, the text and the chart.

    ``data`` is the tidy DataFrame the chart is drawn from (one row per run or per point).
    """

    measured: dict[str, Any]
    held: bool
    summary: str
    data: pd.DataFrame | None = None
    chart: alt.TopLevelMixin | None = None


@dataclass(frozen=True)
class Result:
    """The checked claim (theory §5.6): its identity, the size run, the numbers and the verdict.

    Attributes:
        name, paper, figure, setting, threshold: copied from the :class:`Claim`.
        size: the name of the size run ("tiny", "quick", "full" or "custom") and
            ``parameters`` its parameters.
        measured: the numbers (JSON-friendly: floats, ints, strings and lists of them).
        held: True when the threshold was met.
        summary: one or two sentences with the numbers.
        seconds: wall time of the run; ``cpu_seconds`` the CPU time of the process that ran it
            (one torch thread: the core-seconds used, a figure that does not depend on the
            load of a shared machine).
        data: the tidy DataFrame behind ``chart``; ``chart`` an altair chart (or None).
        error: the traceback's last line when the claim's function raised (then held is False).
    """

    name: str
    paper: str
    figure: str
    setting: str
    threshold: str
    size: str
    parameters: dict[str, Any]
    measured: dict[str, Any]
    held: bool
    summary: str
    seconds: float
    data: pd.DataFrame | None = None
    chart: alt.TopLevelMixin | None = None
    error: str | None = None
    cpu_seconds: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """The verdict.json entry (no data frame, no chart)."""
        return {
            "name": self.name,
            "paper": self.paper,
            "figure": self.figure,
            "setting": self.setting,
            "threshold": self.threshold,
            "size": self.size,
            "parameters": _jsonable(self.parameters),
            "measured": _jsonable(self.measured),
            "held": bool(self.held),
            "summary": self.summary,
            "seconds": round(float(self.seconds), 3),
            "cpu_seconds": _jsonable(round(float(self.cpu_seconds), 3)),
            "error": self.error,
        }


@dataclass(frozen=True)
class Claim:
    """One checkable claim of a paper (theory §5.6).

    Attributes:
        name: stable id (``snake_case``), used by ``--claims`` and in verdict.json.
        paper: arXiv id of the paper that states it.
        figure: the figure (or section) it comes from.
        setting: the experiment, in words.
        threshold: the rule that decides ``held``, in words.
        quick, full, tiny: the parameters of each size (plain values, picklable).
        func: ``func(parameters) -> Outcome``; a module-level function, so claims can run in
            worker processes.
        cost: rough relative cost at the quick size (the scheduler starts costly claims first).
    """

    name: str
    paper: str
    figure: str
    setting: str
    threshold: str
    quick: Size
    full: Size
    tiny: Size
    func: Callable[[Size], Outcome] = field(repr=False)
    cost: float = 1.0

    def size(self, size: str | Size = "quick") -> tuple[str, dict[str, Any]]:
        """(name, parameters) of a size: "tiny", "quick", "full", or a mapping of overrides
        of the quick parameters (named "custom")."""
        if isinstance(size, str):
            if size not in SIZES:
                raise ValueError(f"size={size!r} is not valid: expected one of {SIZES}")
            return size, dict(getattr(self, size))
        if not isinstance(size, Mapping):
            raise ValueError(f"size={size!r} is not valid: expected a size name or a mapping")
        unknown = sorted(set(size) - set(self.quick))
        if unknown:
            raise ValueError(
                f"size has unknown parameter(s) {unknown} for claim {self.name!r}: expected"
                f" some of {sorted(self.quick)}"
            )
        return "custom", {**self.quick, **size}

    def run(self, size: str | Size = "quick") -> Result:
        """Run the claim at ``size`` (see :meth:`size`); an exception becomes held=False."""
        label, params = self.size(size)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            out = self.func(params)
            error = None
        except Exception as exc:  # a broken claim is a failed claim, not a crashed report
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out = Outcome({}, False, f"error: {tb}")
            error = tb
        return Result(
            name=self.name,
            paper=self.paper,
            figure=self.figure,
            setting=self.setting,
            threshold=self.threshold,
            size=label,
            parameters=params,
            measured=out.measured,
            held=bool(out.held) and error is None,
            summary=out.summary,
            seconds=time.perf_counter() - t0,
            data=out.data,
            chart=out.chart,
            error=error,
            cpu_seconds=time.process_time() - c0,
        )


# ====================================================================== helpers
def _jsonable(value: Any) -> Any:
    """Floats (NaN/inf -> None), ints, bools, strings, lists and dicts of them."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    kind = getattr(getattr(value, "dtype", None), "kind", None)  # numpy / torch scalars
    if kind == "b":
        return bool(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if f.is_integer() and type(value).__name__.startswith(("int", "uint")):
        return int(f)
    return f if math.isfinite(f) else None


def _plain_gd(lr: float) -> Recipe:
    """Plain full-batch gradient descent, the follow-up's optimiser (theory §5.3): momentum 0,
    constant learning rate, no fallback restarts."""
    from dnc_interactive.training import Recipe

    return Recipe(lr=lr, momentum=0.0, momentum_boost=None, restarts=0)


def _follow_up_base(width: int = 30, lam: float = 0.004) -> DUFMConfig:
    """The follow-up's 4-DUFM (theory §5.3): K = 10, n = 5, L = 4, float64."""
    from dnc_interactive.config import DUFMConfig

    return DUFMConfig(
        num_classes=10,
        samples_per_class=5,
        depth=4,
        width=width,
        lambda_H=lam,
        lambda_W=lam,
        dtype="float64",
    )


def _sweep(grid: dict[str, Any], steps: int, base: DUFMConfig, recipe: Recipe, polish: int = 0):
    """A batched sweep (seeds x settings in one batch per shape; theory §5) on 1 thread."""
    import warnings

    from dnc_interactive.sweeps import sweep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # narrow widths warn; that is the point
        return sweep(
            grid, steps, base=base, recipe=recipe, polish=polish, progress=False, threads=1
        )


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either is constant."""
    import pandas as pd

    rx = pd.Series(list(x), dtype=float).rank()  # average ranks for ties
    ry = pd.Series(list(y), dtype=float).rank()
    if rx.nunique() < 2 or ry.nunique() < 2:
        return math.nan
    return float(rx.corr(ry))


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _rule(value: float, axis: str = "y", label: str = "") -> alt.Chart:
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame({"v": [value], "label": [label]})
    enc = {axis: alt.Y("v:Q") if axis == "y" else alt.X("v:Q")}
    return (
        alt.Chart(frame)
        .mark_rule(strokeDash=[4, 3], color="#d62728")
        .encode(**enc, tooltip=["label:N", "v:Q"])
    )
