"""`ec2batch report JOB --html FILE`: one self-contained HTML page of a job's runs, from the ledger.

The same charts as the CloudWatch dashboard (durations, start lag, memory and CPU peaks against the
machine's size, cost per run, outcomes) and the runs table, drawn as inline SVG: no server, no network,
no script or style from anywhere else, so the file opens anywhere, offline, and can be mailed.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .ledger import SUCCEEDED, Run, parse_time
from .metrics import figures
from .rightsizing import Hint
from .usage import format_bytes

WIDTH, HEIGHT = 720, 190
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 26, 34
MEMORY_THRESHOLD = 85.0  # drawn on the memory chart: the alarm's default (terraform's variable)


@dataclass(frozen=True)
class Bar:
    label: str  # under the bar (a date), sparse when there are many
    value: float | None  # None: no figure for this run (drawn as a gap)
    css: str  # the outcome's class: ok, failed, oom
    tip: str  # the bar's <title>: shown on hover, read by screen readers


def render(job: str, runs: Sequence[Run], hint: Hint, *, since: datetime | None, generated_at: datetime) -> str:
    ordered = sorted(runs, key=lambda r: r.run_id)
    ended = [r for r in ordered if r.terminal and r.status != "SKIPPED"]
    charts = [
        _chart("Run duration", "s", ended, lambda r, f: f.get("RunDuration")),
        _chart("Start lag (trigger to container start)", "s", ended, lambda r, f: f.get("StartLag")),
        _chart(
            "Peak memory, % of the machine (or the container's limit)",
            "%",
            ended,
            lambda r, f: f.get("PeakMemoryPercent"),
            lines=((100.0, "100 %"), (MEMORY_THRESHOLD, f"alarm {MEMORY_THRESHOLD:g} %")),
            top=100.0,
        ),
        _chart("Peak CPU, % of the vCPUs", "%", ended, lambda r, f: f.get("PeakCpuPercent"), top=100.0),
        _chart("Cost per run", "$", ended, lambda r, f: f.get("Cost")),
        _outcomes(ended),
    ]
    period = f"since {since.date().isoformat()}" if since else "all runs in the ledger"
    return _PAGE.format(
        title=html.escape(f"ec2batch report: {job}"),
        job=html.escape(job),
        period=html.escape(period),
        generated=html.escape(generated_at.strftime("%Y-%m-%d %H:%M UTC")),
        count=len(ordered),
        hint=html.escape(hint.text),
        charts="\n".join(f'<figure class="chart">{c}</figure>' for c in charts),
        rows="\n".join(_row(r) for r in reversed(ordered)),
    )


def _css(run: Run) -> str:
    if (run.usage is not None and run.usage.oom_killed) or "OOM" in (run.reason or ""):
        return "oom"
    return "ok" if run.status == SUCCEEDED else "failed"


def _chart(
    title: str,
    unit: str,
    runs: Sequence[Run],
    value: Callable[[Run, dict[str, float]], float | None],
    *,
    lines: Sequence[tuple[float, str]] = (),
    top: float | None = None,
) -> str:
    bars = []
    for run in runs:
        v = value(run, figures(run, run.status, run.usage, run.cost_usd))
        shown = "-" if v is None else (f"${v:.4f}" if unit == "$" else f"{v:g} {unit}")
        tip = f"{run.run_id} {run.status}: {shown}" + (f" ({run.reason})" if run.reason else "")
        bars.append(Bar(_day(run), v, _css(run), tip))
    return _bars_svg(title, unit, bars, lines=lines, top=top)


def _bars_svg(
    title: str, unit: str, bars: Sequence[Bar], *, lines: Sequence[tuple[float, str]] = (), top: float | None = None
) -> str:
    values = [b.value for b in bars if b.value is not None]
    peak = max([*values, *(v for v, _ in lines), top or 0.0, 1e-9])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}" data-bars="{len(values)}">',
        f'<text class="title" x="{LEFT}" y="16">{html.escape(title)}</text>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick(peak * fraction, unit)}</text>'
        )
    for value, label in lines:
        y = TOP + plot_h * (1 - value / peak)
        parts.append(f'<line class="limit" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="limit-label" x="{WIDTH - RIGHT - 4}" y="{y - 3:.1f}" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
    every = max(1, len(bars) // 8)  # at most ~8 date labels under the bars
    for i, bar in enumerate(bars):
        x = LEFT + i * step + step * 0.15
        if bar.value is not None:
            h = max(plot_h * bar.value / peak, 1.0)
            parts.append(
                f'<rect class="bar {bar.css}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{step * 0.7:.1f}" '
                f'height="{h:.1f}"><title>{html.escape(bar.tip)}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{x + step * 0.35:.1f}" y="{HEIGHT - 14}" text-anchor="middle">'
                f"{html.escape(bar.label)}</text>"
            )
    if not values:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle">no figures</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _outcomes(runs: Sequence[Run]) -> str:
    counts = Counter("OOM" if _css(r) == "oom" else r.status for r in runs)
    bars = [
        Bar(name, float(n), "ok" if name == SUCCEEDED else ("oom" if name == "OOM" else "failed"), f"{name}: {n}")
        for name, n in sorted(counts.items())
    ]
    return _bars_svg("Outcomes (runs)", "", bars)


def _tick(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:.3f}"
    return f"{value:.0f}{' ' + unit if unit else ''}"


def _day(run: Run) -> str:
    stamp = run.scheduled_at or run.triggered_at
    return parse_time(stamp).strftime("%m-%d") if stamp else "?"


def _row(run: Run) -> str:
    f = figures(run, run.status, run.usage, run.cost_usd)
    usage = run.usage
    memory = f"{format_bytes(usage.peak_memory_bytes)} ({usage.peak_memory_percent:g} %)" if usage else "-"
    cpu = f"{usage.average_cpu_percent:.0f} / {usage.peak_cpu_percent:.0f} %" if usage else "-"
    cells = [
        run.run_id,
        run.trigger,
        run.status,
        run.instance_type or "-",
        _fmt(f.get("RunDuration"), "s"),
        _fmt(f.get("StartLag"), "s"),
        memory,
        cpu,
        f"${run.cost_usd:.4f}" if run.cost_usd is not None else "-",
        run.reason or "",
    ]
    tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
    return f'<tr class="{_css(run)}">{tds}</tr>'


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.0f} {unit}"


# The page: its style and its one small script (table sorting) are inline, like the charts.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2733; background: #fff; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
.meta {{ color: #5a6675; margin: 0 0 12px; }}
.hint {{ background: #f3f6fa; border-left: 4px solid #3a6ea5; padding: 8px 12px; margin: 0 0 16px; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 12px; }}
figure.chart {{ margin: 0; border: 1px solid #dde3ea; border-radius: 4px; padding: 4px; }}
svg {{ width: 100%; height: auto; }}
svg .title {{ font-weight: 600; font-size: 13px; fill: #1d2733; }}
svg .tick, svg .limit-label, svg .empty {{ font-size: 10px; fill: #5a6675; }}
svg .axis {{ stroke: #8895a5; }}
svg .limit {{ stroke: #c0392b; stroke-dasharray: 4 3; }}
svg .bar.ok {{ fill: #3a6ea5; }}
svg .bar.failed {{ fill: #d35400; }}
svg .bar.oom {{ fill: #8e1b1b; }}
.legend {{ color: #5a6675; margin: 0 0 12px; }}
.key {{ display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }}
.key.ok {{ background: #3a6ea5; }} .key.failed {{ background: #d35400; }} .key.oom {{ background: #8e1b1b; }}
table {{ border-collapse: collapse; margin-top: 20px; width: 100%; font-size: 12px; }}
th, td {{ border-bottom: 1px solid #e4e8ee; padding: 4px 6px; text-align: left; white-space: nowrap; }}
th {{ cursor: pointer; background: #f3f6fa; }}
tr.failed td:nth-child(3) {{ color: #d35400; font-weight: 600; }}
tr.oom td:nth-child(3) {{ color: #8e1b1b; font-weight: 600; }}
td:last-child {{ white-space: normal; }}
</style>
</head>
<body>
<h1>{job}</h1>
<p class="meta">{count} runs, {period}; generated {generated} from the run ledger.</p>
<p class="hint">Right-sizing hint: {hint}</p>
<p class="legend"><span class="key ok"></span>succeeded <span class="key failed"></span>failed
<span class="key oom"></span>killed for memory (OOM); one bar per run, oldest first; hover a bar for its run.</p>
<section class="charts">
{charts}
</section>
<table id="runs">
<thead><tr><th>run id</th><th>trigger</th><th>status</th><th>instance</th><th>duration</th><th>start lag</th>
<th>peak memory</th><th>CPU avg / peak</th><th>cost</th><th>reason</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<script>
// Click a column heading to sort the table by it (again: the other way round).
document.querySelectorAll("#runs th").forEach(function (th, column) {{
  th.addEventListener("click", function () {{
    var body = document.querySelector("#runs tbody");
    var rows = Array.prototype.slice.call(body.rows);
    var down = th.dataset.down !== "1";
    th.dataset.down = down ? "1" : "0";
    rows.sort(function (a, b) {{
      var x = a.cells[column].textContent, y = b.cells[column].textContent;
      var nx = parseFloat(x.replace(/[^0-9.\\-]/g, "")), ny = parseFloat(y.replace(/[^0-9.\\-]/g, ""));
      var order = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
      return down ? order : -order;
    }});
    rows.forEach(function (row) {{ body.appendChild(row); }});
  }});
}});
</script>
</body>
</html>
"""
