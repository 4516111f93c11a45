"""How a run is shown to a person (CLI, demo)."""

from __future__ import annotations

from .ledger import Run, parse_time


def summary(run: Run) -> str:
    """The run's outcome and how long each step took, on a few lines."""
    lines = [f"run {run.run_id} {run.status}" + (f" (exit {run.exit_code})" if run.exit_code is not None else "")]
    if run.reason:
        lines.append(f"  reason: {run.reason}")
    if run.upstream:
        lines.append(f"  after: {', '.join(run.upstream)}")
    steps = [
        ("triggered", run.triggered_at),
        ("instance running", run.instance_running_at),
        ("container started", run.container_started_at),
        ("ended", run.ended_at),
    ]
    start = parse_time(run.triggered_at)
    for label, stamp in steps:
        if stamp:
            offset = (parse_time(stamp) - start).total_seconds()
            lines.append(f"  {label:<18} {stamp}  (+{offset:.1f}s)")
    if run.instance_id:
        lines.append(f"  instance: {run.instance_id} ({run.instance_type or '?'})")
    earlier = run.all_attempts()[:-1] if run.attempts else ()
    for attempt in earlier:
        lines.append(
            f"  attempt {attempt.number}: {attempt.status} on {attempt.instance_id or '-'} "
            f"({attempt.market or 'on-demand'}){': ' + attempt.reason if attempt.reason else ''}"
        )
    if run.image_digest:
        lines.append(f"  image: {run.image_digest}")
    return "\n".join(lines)
