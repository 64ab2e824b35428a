"""``mreg diff --format markdown``: a diff as a pull-request comment.

A table per artifact (sizes, row and parameter deltas, tensors changed and their share of the
parameters, metric deltas of registered versions), the line-by-line details folded in
``<details>``. Names and values come from a clone: they are shown inside code spans and code
blocks with backticks and control characters taken out, so a manifest cannot inject markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.terminal import printable

if TYPE_CHECKING:
    from mreg.repo.diff import ArtifactChange, Diff, Side

SIGN = {"added": "+", "removed": "-", "changed": "~"}


def render(diff: Diff) -> str:
    """The whole comment, ending in a newline."""
    between = f"{_code(diff.old)} → {_code(diff.new)}"
    if not diff.changes:
        return f"### mreg: no model or dataset changed, {between}\n"
    parts = [f"### mreg: {len(diff.changes)} artifact(s) changed, {between}"]
    for change in diff.changes:
        parts += ["", *_artifact(change)]
    return "\n".join(parts) + "\n"


def _artifact(change: ArtifactChange) -> list[str]:
    lines = [
        f"#### {SIGN[change.change]} {_code(change.name)} ({change.kind}, {change.change})",
        "",
        "| | before | after | change |",
        "|---|---:|---:|---:|",
    ]
    before, after = change.before, change.after
    lines.append(_row("size (bytes)", _get(before, "size"), _get(after, "size")))
    if change.kind == "model":
        lines.append(_row("parameters", _get(before, "parameters"), _get(after, "parameters")))
    else:
        lines.append(_row("rows", _get(before, "rows"), _get(after, "rows")))
    if change.change == "changed" and change.kind == "model" and after and after.parameters:
        share = 100 * change.changed_parameters / after.parameters
        lines.append(
            f"| tensors changed | | {change.tensors_changed:,} of {change.tensors:,} "
            f"| {share:.1f}% of parameters |"
        )
    lines += _metric_rows(before, after)
    if change.details:
        body = "\n".join(_plain(line) for line in change.details)
        lines += [
            "",
            f"<details><summary>{len(change.details)} detail line(s)</summary>",
            "",
            "```",
            body,
            "```",
            "",
            "</details>",
        ]
    return lines


def _metric_rows(before: Side | None, after: Side | None) -> list[str]:
    old = before.metrics if before else {}
    new = after.metrics if after else {}
    rows = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        delta = f"{b - a:+.4g}" if a is not None and b is not None else ""
        rows.append(f"| metric {_code(key)} | {_num(a)} | {_num(b)} | {delta} |")
    return rows


def _get(side: Side | None, field: str) -> int | None:
    return None if side is None else int(getattr(side, field))


def _row(label: str, old: int | None, new: int | None) -> str:
    delta = f"{new - old:+,}" if old is not None and new is not None else ""
    return f"| {label} | {_num(old)} | {_num(new)} | {delta} |"


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _plain(text: str) -> str:
    """One line from a clone, safe in a code block: no backticks, no control characters."""
    return printable(text).replace("`", "'")


def _code(text: str) -> str:
    """A code span; ``|`` escaped so it cannot split a table cell."""
    return "`" + _plain(text).replace("|", "\\|") + "`"
