"""What every chart of the app shares: the Plotly config, the layout (title,
margins, legend, number formats) and the marks for partial periods and
clipped outliers. Pure: plain data in, figure dict parts out.

The title sits just above the plot area, left-aligned, with the top margin
kept clear above it for the mode bar (which Plotly draws at the top right
corner), so the two never cover each other at any width. Value axes show
every number with thousands separators (``2,500``, ``1,500,000``; no ``2.5k``
or ``1.5M``), as hover labels do.
"""

from __future__ import annotations

from typing import Any

from babel import dates as babel_dates

from dashboard import format as fmt
from dashboard.i18n import N_, SOURCE_LANGUAGE, _, current_language, locale_of, translate

# the mode bar keeps zoom, pan, reset and the PNG download
CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d",
                               "toggleSpikelines", "hoverClosestCartesian",
                               "hoverCompareCartesian"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}
# Plotly's own texts a user meets here (mode bar, download, zoom hint), for
# the catalogs; Plotly looks them up by their English text (config "locales")
PLOTLY_TEXTS = (
    N_("Download plot as a PNG"), N_("Download plot"), N_("Zoom"), N_("Pan"),
    N_("Reset axes"), N_("Autoscale"), N_("Share chart..."), N_("Share chart"),
    N_("Zoom in"), N_("Zoom out"),
    N_("Double-click to zoom back out"), N_("Double-click on legend to isolate one trace"),
    N_("Preparing image - this may take a few seconds"), N_("Image download succeeded"),
    N_("Sorry, there was a problem downloading your image!"),
)


def config() -> dict[str, Any]:
    """The Plotly config of a graph: :data:`CONFIG`, and in another language
    than English Plotly's own texts, month and day names in that language."""
    lang = current_language()
    if lang == SOURCE_LANGUAGE:
        return CONFIG
    loc = locale_of(lang)

    def names(get: Any, width: str, keys: list[int]) -> list[str]:
        found = get(width, "stand-alone", loc)
        return [found[k] for k in keys]

    sunday_first = [6, 0, 1, 2, 3, 4, 5]  # babel counts days from Monday (0)
    months = list(range(1, 13))
    locale = {
        "dictionary": {t.msgid: translate(t) for t in PLOTLY_TEXTS},
        "format": {
            "days": names(babel_dates.get_day_names, "wide", sunday_first),
            "shortDays": names(babel_dates.get_day_names, "abbreviated", sunday_first),
            "months": names(babel_dates.get_month_names, "wide", months),
            "shortMonths": names(babel_dates.get_month_names, "abbreviated", months),
            "date": "%d.%m.%Y",
        },
    }
    return {**CONFIG, "locale": lang, "locales": {lang: locale}}


TOP = 64  # px above the plot: the mode bar's row (~30 px), then the title
SEPARATORS = ".,"  # decimal point, thousands separator (English; see separators())
PARTIAL_OPACITY = 0.45
PARTIAL_PATTERN = "/"


def value_axis(title: str | None = None, **extra: Any) -> dict[str, Any]:
    """An axis of numbers: thousands separators on ticks and in hover labels,
    room made for its tick labels and title."""
    axis: dict[str, Any] = {"separatethousands": True, "exponentformat": "none",
                            "tickformat": ",~f", "hoverformat": ",.2~f", "automargin": True,
                            "gridcolor": "#e9ecef", "rangemode": "tozero"}
    if title:
        axis["title"] = {"text": title, "standoff": 8}
    return {**axis, **extra}


# a grid column of numbers: shown as 12,345 (assets/dashAgGridFunctions.js)
NUMBER_COLUMN: dict[str, Any] = {"type": "numericColumn",
                                 "valueFormatter": {"function": "thousands(params)"}}


def axis(title: str | None = None, **extra: Any) -> dict[str, Any]:
    """A category or date axis: its title never overlaps its labels."""
    out: dict[str, Any] = {"automargin": True}
    if title:
        out["title"] = {"text": title, "standoff": 6}
    return {**out, **extra}


def date_axis(title: str | None = None, **extra: Any) -> dict[str, Any]:
    """A date axis: Plotly names months in English ("Nov 21"), so in
    another language the ticks and hover labels are numeric (21.11)."""
    if current_language() != SOURCE_LANGUAGE:
        extra = {"tickformat": "%d.%m", "hoverformat": "%d.%m.%Y", **extra}
    return axis(title, type="date", **extra)


def layout(title: str, *, height: int = 340, legend: str = "bottom", **extra: Any
           ) -> dict[str, Any]:
    """The common layout. ``legend``: "bottom" (a row under the x axis and its
    title), "right" (a column beside the plot, for many series) or "none"."""
    out: dict[str, Any] = {
        "title": {"text": title, "x": 0, "xref": "paper", "xanchor": "left",
                  "y": 1, "yref": "paper", "yanchor": "bottom", "pad": {"b": 10},
                  "font": {"size": 15}},
        "height": height,
        "separators": fmt.plotly_separators(),
        "margin": {"l": 10, "r": 10, "t": TOP, "b": 10},
        "plot_bgcolor": "white", "paper_bgcolor": "white",
        "hoverlabel": {"namelength": -1},
        "xaxis": axis(),
        "yaxis": value_axis(),
    }
    if legend == "bottom":
        # anchored to the bottom of the whole figure (not of the plot area), so
        # it always sits below the x axis' labels and title
        out["legend"] = {"orientation": "h", "x": 0, "xanchor": "left", "y": 0,
                         "yref": "container", "yanchor": "bottom"}
        out["margin"]["b"] = 36
    elif legend == "right":
        out["legend"] = {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1,
                         "yanchor": "top"}
    else:
        out["showlegend"] = False
    for key, value in extra.items():
        # margin, title and legend adjust the defaults; anything else (an axis
        # too: a heatmap's category axis is no value axis) replaces them
        if key in ("margin", "title", "legend") and isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def partial_marks(labels: list[str], notes: list[str | None]) -> dict[str, Any]:
    """Shapes and annotations marking the partial periods of a category axis
    (``notes[i]`` is None for a whole period, else its short description):
    a light grey band behind the bar and "partial: …" at the top (in the
    user's language, as the notes are)."""
    shapes, annotations = [], []
    for i, note in enumerate(notes):
        if note is None:
            continue
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": i - 0.5,
                       "x1": i + 0.5, "y0": 0, "y1": 1, "layer": "below", "line": {"width": 0},
                       "fillcolor": "rgba(173, 181, 189, 0.18)"})
        annotations.append({"x": labels[i], "xref": "x", "y": 1, "yref": "paper",
                            "yanchor": "top", "text": _("partial:<br>%(note)s", note=note),
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


def clip_tall(values: list[list[float]], *, factor: float = 3.0) -> float | None:
    """The top of a value axis that keeps the ordinary bars readable when a
    few are much taller (``factor`` times the 90th percentile of the non-zero
    values, e.g. a once-a-month expiry run against daily points), or None when
    nothing needs clipping."""
    flat = sorted(v for series in values for v in series if v and v > 0)
    if len(flat) < 5:
        return None
    typical = flat[int(0.9 * (len(flat) - 1))]
    if typical <= 0 or flat[-1] <= factor * typical:
        return None
    below = [v for v in flat if v <= factor * typical]
    return 1.15 * max(below)


def clipped_notes(xs: list[Any], series: list[tuple[str, list[float]]], top: float | None,
                  ) -> list[dict[str, Any]]:
    """An annotation over every bar cut at ``top``, with its real value
    (``series`` names as the legend shows them)."""
    if top is None:
        return []
    notes = []
    for name, ys in series:
        for x, y in zip(xs, ys, strict=True):
            if y is not None and y > top:
                notes.append({"x": x, "y": top, "xref": "x", "yref": "y", "yanchor": "bottom",
                              "text": _("%(series)s: %(value)s ↑ (cut)", series=name,
                                        value=fmt.points(round(y))), "showarrow": False,
                              "font": {"size": 10, "color": "#495057"},
                              "bgcolor": "rgba(255,255,255,0.85)", "name": "clipped"})
    return notes
