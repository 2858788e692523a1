"""What charts share: the marks for partial periods. Pure: plain data in,
figure dict parts out."""

from __future__ import annotations

from typing import Any

PARTIAL_OPACITY = 0.45
PARTIAL_PATTERN = "/"


def partial_marks(labels: list[str], notes: list[str | None]) -> dict[str, Any]:
    """Shapes and annotations marking the partial periods of a category axis
    (``notes[i]`` is None for a whole period, else its short description):
    a light grey band behind the bar and "partial: …" at the top."""
    shapes, annotations = [], []
    for i, note in enumerate(notes):
        if note is None:
            continue
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": i - 0.5,
                       "x1": i + 0.5, "y0": 0, "y1": 1, "layer": "below", "line": {"width": 0},
                       "fillcolor": "rgba(173, 181, 189, 0.18)"})
        annotations.append({"x": labels[i], "xref": "x", "y": 1, "yref": "paper",
                            "yanchor": "top", "text": f"partial:<br>{note}",
                            "showarrow": False, "font": {"size": 10, "color": "#495057"},
                            "name": "partial"})
    return {"shapes": shapes, "annotations": annotations}


def partial_bars(trace: dict[str, Any], partial: list[bool]) -> dict[str, Any]:
    """A bar trace with its partial periods lighter and hatched."""
    marker = dict(trace.get("marker") or {})
    marker["opacity"] = [PARTIAL_OPACITY if p else 1 for p in partial]
    marker["pattern"] = {"shape": [PARTIAL_PATTERN if p else "" for p in partial]}
    return {**trace, "marker": marker}


def partial_line(trace: dict[str, Any], partial: list[bool]) -> list[dict[str, Any]]:
    """A line trace drawn solid over whole periods and dotted into a partial
    one (a second, legend-less trace from the neighbouring whole point)."""
    xs, ys = trace["x"], trace["y"]
    whole = {**trace, "y": [None if p else y for y, p in zip(ys, partial, strict=True)]}
    out = [whole]
    for i, p in enumerate(partial):
        if not p:
            continue
        idx = [j for j in (i - 1, i, i + 1) if 0 <= j < len(xs) and (j == i or not partial[j])]
        out.append({**trace, "x": [xs[j] for j in idx], "y": [ys[j] for j in idx],
                    "showlegend": False, "hoverinfo": "skip",
                    "line": {**(trace.get("line") or {}), "dash": "dot"},
                    "marker": {**(trace.get("marker") or {}), "symbol": "circle-open"},
                    "legendgroup": trace.get("name")})
        whole.setdefault("legendgroup", trace.get("name"))
    return out
