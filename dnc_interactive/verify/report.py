"""verdict.json and the one-page report of ``dnc-interactive verify`` (theory §5.6).

* :func:`verdict` — the JSON-ready dict: ``version``, ``quick``, ``size``, ``claims`` (one
  entry per claim: name, paper, figure, setting, threshold, measured, held, summary,
  seconds, ...), ``all_held``, the total ``seconds`` and the ``workers`` used.
* :func:`write_report` — ``verdict.json``, ``report.html`` (one page: a table of the verdicts,
  then each claim with its numbers next to its chart; the charts are altair specs drawn by
  vega-embed, whose JavaScript is inlined from vl-convert, so the page needs no network, like
  :mod:`dnc_interactive.charts.render`) and, when vl-convert can render it, ``report.png``
  (every claim's chart stacked, titled by claim).

Layering: imports the standard library at import time; pandas, altair and vl-convert when a
report is written.
"""

from __future__ import annotations

import html
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dnc_interactive.verify.claims import Result

__all__ = ["VERDICT_KEYS", "table", "verdict", "write_report"]

#: Top-level keys of verdict.json.
VERDICT_KEYS: tuple[str, ...] = (
    "version",
    "quick",
    "size",
    "all_held",
    "seconds",
    "workers",
    "created",
    "platform",
    "claims",
)

_BUNDLE: str | None = None


def verdict(
    results: Sequence[Result], *, quick: bool, size: str, seconds: float, workers: int
) -> dict[str, Any]:
    """The verdict.json content for ``results`` (theory §5.6)."""
    from dnc_interactive import __version__

    return {
        "version": __version__,
        "quick": bool(quick),
        "size": size,
        "all_held": bool(results) and all(r.held for r in results),
        "seconds": round(float(seconds), 3),
        "workers": int(workers),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "platform": f"{platform.python_implementation()} {platform.python_version()},"
        f" {platform.machine()}",
        "claims": [r.to_dict() for r in results],
    }


def table(doc: dict[str, Any]) -> str:
    """A plain-text table of a verdict: one line per claim, then the overall verdict."""
    rows = [("claim", "paper", "held", "seconds", "cpu s")]
    for c in doc["claims"]:
        cpu = c.get("cpu_seconds")
        rows.append(
            (
                c["name"],
                c["paper"],
                "yes" if c["held"] else "NO",
                f"{c['seconds']:.1f}",
                "n/a" if cpu is None else f"{cpu:.1f}",
            )
        )
    n = len(rows[0])
    w = [max(len(r[i]) for r in rows) for i in range(n)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(r[j].ljust(w[j]) for j in range(n)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w[j] for j in range(n)))
    lines.append("")
    for c in doc["claims"]:
        lines.append(f"{c['name']}: {c['summary']}")
    held = sum(c["held"] for c in doc["claims"])
    lines.append("")
    lines.append(
        f"{held} of {len(doc['claims'])} claims held ({doc['size']} size, {doc['seconds']:.1f} s):"
        f" {'ALL HELD' if doc['all_held'] else 'SOME FAILED'}"
    )
    return "\n".join(lines)


def _cache_dirs() -> list[Path]:
    """Where the bundle is cached: ``$DNC_INTERACTIVE_CACHE``, else
    ``$XDG_CACHE_HOME/dnc-interactive`` (``~/.cache/dnc-interactive``), then a temporary
    folder (the same places as the live chart's bundle)."""
    import os
    import tempfile

    env = os.environ.get("DNC_INTERACTIVE_CACHE")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    first = Path(env) if env else Path(base) / "dnc-interactive"
    return [first, Path(tempfile.gettempdir()) / "dnc-interactive-cache"]


def _bundle() -> str | None:
    """vega + vega-lite + vega-embed as one inline script (vl-convert), or None without
    vl-convert. Built once per machine (~7 s) and cached on disk, keyed by the versions."""
    global _BUNDLE
    if _BUNDLE is not None:
        return _BUNDLE
    try:
        import vl_convert as vlc
        from altair.utils._importers import vl_version_for_vl_convert

        vl_version = vl_version_for_vl_convert()
    except Exception:  # no vl-convert: the page shows the specs instead of charts
        return None
    import os

    key = f"{getattr(vlc, '__version__', 'x')}-{vl_version}".replace("/", "_")
    dirs = _cache_dirs()
    for folder in dirs:
        path = folder / f"vega-embed-{key}.js"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if text:
                _BUNDLE = text
                return text
    try:
        text = vlc.javascript_bundle(vl_version=vl_version)  # type: ignore[call-arg]
    except Exception:
        return None
    for folder in dirs:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".vega-embed-{key}.{os.getpid()}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, folder / f"vega-embed-{key}.js")
            break
        except OSError:
            continue
    _BUNDLE = text
    return text


def _spec(result: Result) -> dict[str, Any] | None:
    if result.chart is None:
        return None
    try:
        return result.chart.to_dict()
    except Exception:
        return None


_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; }
.verdict { font-size: 18px; font-weight: 600; padding: 6px 10px; display: inline-block; }
.ok { background: #e3f4e3; color: #1b5e20; }
.bad { background: #fde4e4; color: #b71c1c; }
table.summary { border-collapse: collapse; margin: 12px 0 20px; font-size: 14px; }
table.summary td, table.summary th { border-bottom: 1px solid #ddd; padding: 4px 10px;
  text-align: left; }
section.claim { display: flex; gap: 18px; border-top: 1px solid #ccc; padding: 12px 0; }
section.claim .text { flex: 1 1 50%; font-size: 14px; }
section.claim .chart { flex: 1 1 50%; min-width: 360px; }
section.claim h2 { font-size: 16px; margin: 0 0 6px; }
dl { margin: 0; } dt { font-weight: 600; margin-top: 4px; } dd { margin-left: 12px; }
pre { font-size: 12px; background: #f6f6f6; padding: 6px; overflow-x: auto; }
"""


def _claim_html(i: int, r: Result, entry: dict[str, Any]) -> str:
    e = html.escape
    badge = (
        '<span class="verdict ok">held</span>'
        if r.held
        else '<span class="verdict bad">not held</span>'
    )
    measured = json.dumps(entry["measured"], indent=1)
    params = json.dumps(entry["parameters"])
    return f"""
<section class="claim" id="{e(r.name)}">
  <div class="text">
    <h2>{e(r.name)} {badge}</h2>
    <dl>
      <dt>paper</dt><dd>arXiv {e(r.paper)}, {e(r.figure)}</dd>
      <dt>setting</dt><dd>{e(r.setting)}</dd>
      <dt>threshold</dt><dd>{e(r.threshold)}</dd>
      <dt>result ({e(r.size)} size, {r.seconds:.1f} s)</dt><dd>{e(r.summary)}</dd>
    </dl>
    <details><summary>measured numbers</summary><pre>{e(measured)}</pre></details>
    <details><summary>size parameters</summary><pre>{e(params)}</pre></details>
  </div>
  <div class="chart"><div id="chart{i}"></div></div>
</section>"""


def _html(results: Sequence[Result], doc: dict[str, Any]) -> str:
    e = html.escape
    bundle = _bundle()
    rows = "\n".join(
        f'<tr><td><a href="#{e(c["name"])}">{e(c["name"])}</a></td><td>{e(c["paper"])}</td>'
        f"<td>{e(c['figure'])}</td><td>{'held' if c['held'] else '<b>NOT HELD</b>'}</td>"
        f"<td>{c['seconds']:.1f}</td></tr>"
        for c in doc["claims"]
    )
    sections = "\n".join(
        _claim_html(i, r, c) for i, (r, c) in enumerate(zip(results, doc["claims"], strict=True))
    )
    specs = {f"chart{i}": _spec(r) for i, r in enumerate(results)}
    specs_json = json.dumps({k: v for k, v in specs.items() if v is not None}).replace("</", "<\\/")
    ok = doc["all_held"]
    held = sum(c["held"] for c in doc["claims"])
    if bundle is not None:
        script = (
            f"<script>{bundle}</script>\n<script>\nconst specs = {specs_json};\n"
            "for (const [id, spec] of Object.entries(specs)) {\n"
            "  vegaEmbed('#' + id, spec, {renderer: 'svg', actions: false})"
            ".catch(console.error);\n}\n</script>"
        )
    else:
        script = (
            "<p>vl-convert is not installed: the charts' Vega-Lite specs follow instead.</p>"
            f"<pre>{e(specs_json)}</pre>"
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dnc-interactive verify: {held} of {len(doc["claims"])} claims held</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Checking the papers' claims</h1>
<p>dnc-interactive {e(doc["version"])}, {e(doc["size"])} size, {doc["seconds"]:.1f} s on
{doc["workers"]} worker(s), {e(doc["created"])}, {e(doc["platform"])}.
Theory: docs/theory.md §5.6.</p>
<p class="verdict {"ok" if ok else "bad"}">{held} of {len(doc["claims"])} claims held</p>
<table class="summary"><tr><th>claim</th><th>arXiv</th><th>figure</th><th>verdict</th>
<th>seconds</th></tr>
{rows}
</table>
{sections}
{script}
</body>
</html>
"""


def _png(results: Sequence[Result], path: Path) -> Path | None:
    """All charts stacked into one PNG (vl-convert), or None when it cannot be rendered."""
    try:
        import altair as alt

        charts = [
            r.chart.properties(title=f"{r.name}: {'held' if r.held else 'NOT HELD'}")
            for r in results
            if r.chart is not None
        ]
        if not charts:
            return None
        stack = alt.vconcat(*charts).resolve_scale(color="independent", strokeDash="independent")
        stack.resolve_legend(color="independent", strokeDash="independent").save(
            str(path), format="png", scale_factor=1.5
        )
        return path
    except Exception:
        return None


def write_report(
    results: Sequence[Result],
    out: str | Path,
    *,
    quick: bool,
    size: str,
    seconds: float,
    workers: int,
    png: bool = True,
) -> dict[str, Any]:
    """Write ``out``/verdict.json, ``out``/report.html and (``png`` and vl-convert) report.png.

    Returns the verdict dict, with ``files`` added: the paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = verdict(results, quick=quick, size=size, seconds=seconds, workers=workers)
    files = {"verdict": out / "verdict.json", "html": out / "report.html"}
    files["verdict"].write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    files["html"].write_text(_html(results, doc), encoding="utf-8")
    if png:
        written = _png(results, out / "report.png")
        if written is not None:
            files["png"] = written
    return {**doc, "files": {k: str(v) for k, v in files.items()}}
