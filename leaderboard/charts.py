"""Plotly figures for the leaderboard pages, built from plain values and pandas frames.

Nothing here touches Django or the database: views hand in the rows they already have, so every chart can be tested
(and reused by the API or a notebook) without a request. Pages embed each figure with `to_div`: an empty div naming a
JSON data block that holds the figure and its config. No inline script: static/js/charts.js draws every such div with
plotly.js, both loaded from our static files, so pages work under a Content-Security-Policy without 'unsafe-inline'.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from evalworkers.kv.registry import point_label

__all__ = [
    "COLORS",
    "DEPTH_BIN_LABELS",
    "PLOTLY_CONFIG",
    "budget_figure",
    "degradation_figure",
    "depth_grid",
    "depth_heatmap_figure",
    "empty_figure",
    "length_label",
    "pareto_figure",
    "pareto_front",
    "task_curves_figure",
    "task_heatmap_figure",
    "to_div",
]

PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}

# Okabe-Ito (without its yellow, too faint on white) followed by Paul Tol's muted colours: colour-blind safe, and the
# same series gets the same colour on every chart of a page.
COLORS: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
    "#882255", "#117733", "#332288", "#999933", "#44AA99", "#AA4499",
)
FULL_CACHE_COLOR = "#4D4D4D"
FRONT_COLOR = "#333333"

# Red (fail) -> yellow -> green (pass), the usual reading for scores and needle-in-a-haystack grids.
SCORE_COLORSCALE: list[list[Any]] = [
    [0.0, "#D73027"], [0.25, "#F46D43"], [0.5, "#FEE08B"], [0.75, "#A6D96A"], [1.0, "#1A9850"],
]

FONT_FAMILY = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
LENGTH_AXIS_TITLE = "Context length (tokens)"
OUTPUT_AXIS_TITLE = "Required reply length (tokens, the gold reply's)"
POSITION_BINS = 10
SCORE_AXIS_TITLE = "Score (0–100)"
MISSING = "–"
DEPTH_BINS = 10
DEPTH_BIN_LABELS: tuple[str, ...] = tuple(f"{i * 10}–{(i + 1) * 10}%" for i in range(DEPTH_BINS))
FULL_METHOD = "full"


# --- small helpers -------------------------------------------------------------------------------------------------

def length_label(n: int) -> str:
    """Token counts as people say them (4K, 128K, 1M), for tick labels and hovers."""
    n = int(n)
    for suffix, size in (("M", 1 << 20), ("K", 1 << 10)):
        if abs(n) >= size:
            return f"{round(n / size, 1):g}{suffix}"
    return str(n)


def _score(value: Any) -> float | None:
    """Scores arrive as numbers, None or NaN (from pandas); charts want a float or a gap."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _by_length(values: Mapping[Any, Any] | None) -> dict[int, Any]:
    """JSON round trips turn length keys into strings; charts look them up by int."""
    if not values:
        return {}
    return {int(key): value for key, value in values.items()}


def _lengths(lengths: Iterable[Any]) -> list[int]:
    """Lengths in ascending order without repeats, so lines are drawn left to right."""
    return sorted({int(n) for n in lengths})


def _color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def _rgba(hex_color: str, alpha: float) -> str:
    """A translucent version of a series colour, for its confidence band."""
    h = hex_color.lstrip("#")
    red, green, blue = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def _percent_label(pct: float) -> str:
    return f"{pct:g}%"


def _style(fig: go.Figure, title: str, height: int, *, legend: bool = True) -> go.Figure:
    """One look for every chart: white template, readable font, tight margins, legend outside the plot area."""
    fig.update_layout(
        template="plotly_white",
        colorway=list(COLORS),
        font={"family": FONT_FAMILY, "size": 13, "color": "#222222"},
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 16}},
        height=height,
        margin={"l": 64, "r": 24, "t": 56, "b": 56},
        hoverlabel={"font": {"family": FONT_FAMILY, "size": 12}},
        showlegend=legend,
        legend={"x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top", "bgcolor": "rgba(255,255,255,0)"},
    )
    return fig


def _length_axis(fig: go.Figure, lengths: Sequence[int], title: str = LENGTH_AXIS_TITLE) -> None:
    """Lengths double from step to step, so a log axis spaces them evenly; ticks sit exactly on the tested lengths."""
    fig.update_xaxes(
        type="log",
        title_text=title,
        tickmode="array",
        tickvals=list(lengths),
        ticktext=[length_label(n) for n in lengths],
        showgrid=True,
    )


def _score_axis(fig: go.Figure) -> None:
    fig.update_yaxes(title_text=SCORE_AXIS_TITLE, range=[0, 100], dtick=20, zeroline=False)


def empty_figure(message: str) -> go.Figure:
    """A chart-sized placeholder, so a page without data keeps its layout and says why."""
    fig = go.Figure()
    fig.add_annotation(
        text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
        font={"size": 15, "color": "#666666"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, "", 380, legend=False)


# What a JSON data block must not contain literally: "</script>" (or "<!--") would end or confuse the block.
_JSON_IN_HTML = str.maketrans({"<": "\\u003C", ">": "\\u003E", "&": "\\u0026"})
_chart_ids = itertools.count(1)


def figure_json(fig: go.Figure) -> str:
    """The figure's data, layout and our config as one JSON object, safe inside a <script type=application/json>."""
    payload = json.loads(pio.to_json(fig, validate=False))
    payload["config"] = PLOTLY_CONFIG
    return json.dumps(payload).translate(_JSON_IN_HTML)


def to_div(fig: go.Figure) -> str:
    """A div for static/js/charts.js to draw, followed by the JSON data block it names (no executable script)."""
    return div_for(figure_json(fig))


def div_for(figure: str) -> str:
    """`to_div` of a figure already serialised by `figure_json` (e.g. one stored with a board snapshot)."""
    element_id = f"chart-{next(_chart_ids)}"
    return (f'<div class="plotly-chart" data-figure="{element_id}"></div>'
            f'<script type="application/json" id="{element_id}">{figure}</script>')


# --- score across lengths ------------------------------------------------------------------------------------------

def _ci_band(label: str, lengths: Sequence[int], ci: Mapping[int, Any], color: str) -> go.Scatter | None:
    """The 95% interval as filled polygons, one per run of lengths that has an interval (gaps stay gaps)."""
    runs: list[list[tuple[int, float, float]]] = [[]]
    for n in lengths:
        bounds = ci.get(n)
        low, high = (_score(bounds[0]), _score(bounds[1])) if bounds is not None and len(bounds) == 2 else (None, None)
        if low is None or high is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((n, low, high))
    xs: list[int | None] = []
    ys: list[float | None] = []
    for run in (r for r in runs if r):
        if xs:
            xs.append(None)
            ys.append(None)
        xs += [n for n, _, _ in run] + [n for n, _, _ in reversed(run)]
        ys += [high for _, _, high in run] + [low for _, low, _ in reversed(run)]
    if not xs:
        return None
    return go.Scatter(
        x=xs, y=ys, name=f"{label} (95% CI)", legendgroup=label, showlegend=False, mode="lines",
        line={"width": 0, "color": color}, fill="toself", fillcolor=_rgba(color, 0.15), hoverinfo="skip",
    )


def _line_figure(rows: Sequence[Mapping[str, Any]], lengths: Sequence[int], title: str,
                 threshold: float | None, empty_message: str, *, key: str = "scores_by_length",
                 axis_title: str = LENGTH_AXIS_TITLE, hover_name: str = "Length") -> go.Figure:
    """Shared by the model, comparison and task charts: one line per row over the log-2 length axis
    (``key`` names the row's scores by length: the context's, or the reply's for the output-length curve)."""
    xs = _lengths(lengths)
    if not rows or not xs:
        return empty_figure(empty_message)
    fig = go.Figure()
    ticks = [length_label(n) for n in xs]
    for index, row in enumerate(rows):
        label = str(row.get("label", ""))
        color = _color(index)
        scores = _by_length(row.get(key))
        band = _ci_band(label, xs, _by_length(row.get("ci_by_length")), color) if key == "scores_by_length" else None
        if band is not None:
            fig.add_trace(band)
        fig.add_trace(go.Scatter(
            x=xs, y=[_score(scores.get(n)) for n in xs], name=label, legendgroup=label, mode="lines+markers",
            connectgaps=False, cliponaxis=False, line={"color": color, "width": 2.5}, marker={"size": 7},
            customdata=ticks,
            hovertemplate=(f"<b>%{{fullData.name}}</b><br>{hover_name}: %{{customdata}}<br>"
                           "Score: %{y:.1f}<extra></extra>"),
        ))
    _length_axis(fig, xs, axis_title)
    _score_axis(fig)
    if threshold is not None:
        fig.add_hline(
            y=float(threshold), line={"dash": "dash", "color": "#777777", "width": 1.5},
            annotation_text=f"effective-length threshold ({float(threshold):g})",
            annotation_position="bottom left", annotation_font={"size": 12, "color": "#555555"},
        )
    return _style(fig, title, 440)


def degradation_figure(rows: Sequence[Mapping[str, Any]], lengths: Sequence[int],
                       threshold: float | None = None) -> go.Figure:
    """How each model's score falls as the context grows, with its confidence band and the threshold line."""
    return _line_figure(rows, lengths, "Score across context lengths", threshold, "No scores to show yet.")


def output_degradation_figure(rows: Sequence[Mapping[str, Any]], outputs: Sequence[int]) -> go.Figure:
    """The second degradation curve: how the long-generation tasks' score falls as the required reply grows.
    Each row gives ``scores_by_output`` ({reply tokens: score}); no interval is drawn (it is a mean of cells)."""
    return _line_figure(rows, outputs, "Score across required reply lengths", None,
                        "No long-generation scores to show yet.", key="scores_by_output",
                        axis_title=OUTPUT_AXIS_TITLE, hover_name="Reply")


def task_curves_figure(task_scores: Mapping[str, Mapping[Any, Any]], lengths: Sequence[int]) -> go.Figure:
    """Which tasks break first as the context grows."""
    rows = [{"label": task, "scores_by_length": scores} for task, scores in task_scores.items()]
    return _line_figure(rows, lengths, "Score by task across context lengths", None, "No task scores to show yet.")


def task_heatmap_figure(task_scores: Mapping[str, Mapping[Any, Any]], lengths: Sequence[int]) -> go.Figure:
    """Every task at every length at a glance; the first task is the top row."""
    xs = _lengths(lengths)
    if not task_scores or not xs:
        return empty_figure("No task scores to show yet.")
    tasks = [str(task) for task in task_scores]
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for scores in task_scores.values():
        by_length = _by_length(scores)
        values = [_score(by_length.get(n)) for n in xs]
        z.append(values)
        text.append([MISSING if v is None else f"{v:.1f}" for v in values])
    fig = go.Figure(go.Heatmap(
        z=z, x=[length_label(n) for n in xs], y=tasks, text=text, texttemplate="%{text}",
        colorscale=SCORE_COLORSCALE, zmin=0, zmax=100, xgap=2, ygap=2, hoverongaps=False,
        colorbar={"title": {"text": "Score"}, "thickness": 14, "len": 0.9},
        hovertemplate="Task: %{y}<br>Length: %{x}<br>Score: %{text}<extra></extra>",
    ))
    fig.update_xaxes(title_text=LENGTH_AXIS_TITLE, type="category", showgrid=False)
    fig.update_yaxes(title_text="Task", type="category", autorange="reversed", showgrid=False)
    height = max(380, min(900, 130 + 34 * len(tasks)))
    return _style(fig, "Score by task and context length (0–100)", height, legend=False)


# --- KV-cache budgets ----------------------------------------------------------------------------------------------

def _method_frame(points: Sequence[Mapping[str, Any]], *columns: str) -> pd.DataFrame:
    """Points as a frame with the given numeric columns, rows lacking any of them dropped."""
    records = [{"method": str(p.get("method", "")), **{c: _score(p.get(c)) for c in columns}} for p in points]
    frame = pd.DataFrame.from_records(records, columns=["method", *columns])
    return frame.dropna(subset=list(columns)).astype({c: float for c in columns})


def _method_colors(methods: Iterable[str]) -> dict[str, str]:
    """Methods keep one colour across the budget and Pareto charts; the full cache is always neutral grey."""
    colors: dict[str, str] = {}
    for method in methods:
        if method not in colors:
            colors[method] = FULL_CACHE_COLOR if method == FULL_METHOD else _color(
                sum(1 for m in colors if m != FULL_METHOD))
    return colors


def budget_figure(points: Sequence[Mapping[str, Any]]) -> go.Figure:
    """How much quality each compression method keeps as the KV budget shrinks, against the full cache."""
    frame = _method_frame(points, "budget", "score")
    frame = frame[frame["budget"] > 0]
    if frame.empty:
        return empty_figure("No KV-budget results yet.")
    means = frame.groupby(["method", "budget"], sort=False, as_index=False)["score"].mean()
    means["pct"] = (means["budget"] * 100).round(6)
    colors = _method_colors(means["method"])
    fig = go.Figure()
    others = means[means["method"] != FULL_METHOD]
    for method, group in others.groupby("method", sort=False):
        group = group.sort_values("budget", ascending=False)
        fig.add_trace(go.Scatter(
            x=group["pct"].tolist(), y=group["score"].tolist(), name=str(method), mode="lines+markers",
            cliponaxis=False, line={"color": colors[str(method)], "width": 2.5}, marker={"size": 8},
            customdata=[point_label(str(method), b) for b in group["budget"]],
            hovertemplate="<b>%{customdata}</b><br>KV kept: %{x:g}%<br>Score: %{y:.1f}<extra></extra>",
        ))
    full = means[means["method"] == FULL_METHOD]
    span = others["pct"] if not others.empty else means["pct"]
    if not full.empty:
        full_score = float(full["score"].mean())
        low, high = float(span.min()), float(span.max())
        fig.add_trace(go.Scatter(
            x=[high, low], y=[full_score, full_score], name="full cache",
            mode="lines" if low < high else "lines+markers", cliponaxis=False,
            line={"color": FULL_CACHE_COLOR, "dash": "dash", "width": 1.5},
            hovertemplate="<b>full cache</b><br>Score: %{y:.1f}<extra></extra>",
        ))
    ticks = sorted(set(means["pct"].tolist()), reverse=True)
    fig.update_xaxes(
        type="log", autorange="reversed", title_text="KV cache kept (% of full cache)",
        tickmode="array", tickvals=ticks, ticktext=[_percent_label(t) for t in ticks],
    )
    _score_axis(fig)
    return _style(fig, "Score at each KV-cache budget", 420)


def pareto_front(points: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The points no other point beats on both memory and score: the configurations worth choosing.

    A point is dominated when another has no more KV bytes and no lower score, and is strictly better in one.
    Points without bytes or score are ignored. The front comes back ordered by bytes, smallest first.
    """
    usable = [(float(p["kv_bytes"]), float(p["score"]), p) for p in points
              if _score(p.get("kv_bytes")) is not None and _score(p.get("score")) is not None]
    front = [
        (size, score, p) for size, score, p in usable
        if not any(s2 <= size and q2 >= score and (s2 < size or q2 > score) for s2, q2, _ in usable)
    ]
    front.sort(key=lambda item: (item[0], -item[1]))
    return [p for _, _, p in front]


def pareto_figure(points: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Score against memory for every method and budget, with the front of best trade-offs as a step line."""
    usable = [p for p in points if _score(p.get("kv_bytes")) is not None and _score(p.get("score")) is not None]
    if not usable:
        return empty_figure("No KV-cache memory measurements yet.")
    mib = 1 << 20
    fig = go.Figure()
    front = pareto_front(usable)
    fig.add_trace(go.Scatter(
        x=[float(p["kv_bytes"]) for p in front], y=[float(p["score"]) for p in front], name="Pareto front",
        mode="lines", line_shape="hv", line={"color": FRONT_COLOR, "dash": "dot", "width": 1.5}, hoverinfo="skip",
    ))
    by_method: dict[str, list[Mapping[str, Any]]] = {}
    for p in usable:
        by_method.setdefault(str(p.get("method", "")), []).append(p)
    colors = _method_colors(by_method)
    for method, group in by_method.items():
        group = sorted(group, key=lambda p: float(p["kv_bytes"]))
        budgets = [_score(p.get("budget")) for p in group]
        fig.add_trace(go.Scatter(
            x=[float(p["kv_bytes"]) for p in group], y=[float(p["score"]) for p in group], name=method,
            mode="markers", cliponaxis=False,
            marker={"color": colors[method], "size": 10, "line": {"width": 1, "color": "white"}},
            customdata=[[float(p["kv_bytes"]) / mib, MISSING if b is None else _percent_label(round(b * 100, 6)),
                         method if b is None else point_label(method, b)]
                        for p, b in zip(group, budgets, strict=True)],
            hovertemplate=("<b>%{customdata[2]}</b><br>KV kept: %{customdata[1]}<br>"
                           "KV cache: %{customdata[0]:,.1f} MiB<br>Score: %{y:.1f}<extra></extra>"),
        ))
    fig.update_xaxes(type="log", title_text="KV cache after prefill (bytes, log scale)", tickformat="~s",
                     ticksuffix="B")
    _score_axis(fig)
    return _style(fig, "Score against KV-cache memory", 440)


# --- needle depth ---------------------------------------------------------------------------------------------------

def _depth_bin(depth: float) -> int:
    """Ten equal bins; a needle at exactly 100% belongs to the last one, out-of-range depths are clamped."""
    return min(DEPTH_BINS - 1, max(0, int(depth // (100 / DEPTH_BINS))))


def _mean_grid(records: list[dict[str, Any]], row: str, row_labels: Sequence[str], column: str,
               columns: list[int]) -> pd.DataFrame:
    """Mean ``score`` per (row bin, column) of `records`: rows in `row_labels` order, NaN where none fell."""
    if records:
        means = pd.DataFrame.from_records(records).groupby([row, column])["score"].mean().unstack(column)
    else:
        means = pd.DataFrame(dtype=float)
    grid = means.reindex(index=list(row_labels), columns=columns).astype(float)
    grid.index.name = row
    grid.columns.name = column
    return grid


def _score_heatmap(grid: pd.DataFrame, empty_message: str, hovertemplate: str, x_title: str, y_title: str,
                   title: str) -> go.Figure:
    """A 0-100 score heatmap of a `_mean_grid` (bins down, token counts across), its means written in the cells."""
    if grid.empty or grid.isna().all().all():
        return empty_figure(empty_message)
    z = [[None if pd.isna(v) else float(v) for v in row] for row in grid.to_numpy()]
    text = [[MISSING if v is None else f"{v:.0f}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=[length_label(n) for n in grid.columns], y=list(grid.index), text=text, texttemplate="%{text}",
        colorscale=SCORE_COLORSCALE, zmin=0, zmax=100, xgap=2, ygap=2, hoverongaps=False,
        colorbar={"title": {"text": "Score"}, "thickness": 14, "len": 0.9},
        customdata=[[MISSING if v is None else f"{v:.1f}" for v in row] for row in z], hovertemplate=hovertemplate,
    ))
    fig.update_xaxes(title_text=x_title, type="category", showgrid=False)
    fig.update_yaxes(title_text=y_title, type="category", autorange="reversed", showgrid=False)
    return _style(fig, title, 460, legend=False)


def depth_bin_middle(label: str) -> float:
    """The depth (percent) in the middle of a bin named in DEPTH_BIN_LABELS."""
    return (DEPTH_BIN_LABELS.index(label) + 0.5) * (100 / DEPTH_BINS)


def depth_grid(samples: Sequence[Mapping[str, Any]], lengths: Sequence[int]) -> pd.DataFrame:
    """Mean score per (depth bin, length): rows are the ten depth bins, columns the lengths, NaN where untested.

    Samples without a depth or a score, or at a length not asked for, are left out.
    """
    columns = _lengths(lengths)
    wanted = set(columns)
    records = []
    for sample in samples:
        depth, score = _score(sample.get("depth_percent")), _score(sample.get("score"))
        length = sample.get("length")
        if depth is None or score is None or length is None or int(length) not in wanted:
            continue
        records.append({"depth": DEPTH_BIN_LABELS[_depth_bin(depth)], "length": int(length), "score": score})
    return _mean_grid(records, "depth", DEPTH_BIN_LABELS, "length", columns)


def depth_heatmap_figure(samples: Sequence[Mapping[str, Any]], lengths: Sequence[int]) -> go.Figure:
    """The needle-in-a-haystack picture: where in the context, and at which length, retrieval fails (red)."""
    return _score_heatmap(
        depth_grid(samples, lengths), "No needle-depth results yet.",
        "Depth: %{y}<br>Length: %{x}<br>Mean score: %{customdata}<extra></extra>",
        LENGTH_AXIS_TITLE, "Needle depth (% of context)", "Retrieval by needle depth and context length")


# --- many answers: where in the reply answers fail ------------------------------------------------------------------

POSITION_BIN_LABELS: tuple[str, ...] = tuple(f"{i * 10}–{(i + 1) * 10}%" for i in range(POSITION_BINS))


def position_grid(samples: Sequence[Mapping[str, Any]], outputs: Sequence[int]) -> pd.DataFrame:
    """Mean per-question score (0-100) by the question's place in the list (tenths, first to last) and the
    required reply length: rows are the ten position bins, columns the reply lengths, NaN where none fell.

    Each sample gives ``output_tokens`` and ``per_question`` (its questions' scores 0-1, in order); question i of
    K falls in bin floor(10 * i / K). Samples without them, or at a reply length not asked for, are left out.
    """
    columns = _lengths(outputs)
    wanted = set(columns)
    records = []
    for sample in samples:
        per_question, output = sample.get("per_question"), sample.get("output_tokens")
        if not per_question or output is None or int(output) not in wanted:
            continue
        k = len(per_question)
        for i, value in enumerate(per_question):
            score = _score(value)
            if score is not None:
                records.append({"position": POSITION_BIN_LABELS[min(POSITION_BINS - 1, POSITION_BINS * i // k)],
                                "output": int(output), "score": 100 * score})
    return _mean_grid(records, "position", POSITION_BIN_LABELS, "output", columns)


def position_heatmap_figure(samples: Sequence[Mapping[str, Any]], outputs: Sequence[int]) -> go.Figure:
    """The many-answers picture: where in one long reply the answers start failing (red), per reply length."""
    return _score_heatmap(
        position_grid(samples, outputs), "No many-answers results yet.",
        "Questions: %{y} of the list<br>Reply: %{x} tokens<br>Mean score: %{customdata}<extra></extra>",
        OUTPUT_AXIS_TITLE, "Question's place in the list (first to last)",
        "Many answers in one reply: score by the question's place")


# --- shared context: score by turn ---------------------------------------------------------------------------------

def turn_figure(lines: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Score by turn in the shared-context mode: one line per KV method and budget (``label``), over the turns
    (``scores_by_turn``: turn -> mean score 0-100 over the tasks and lengths), so a method that kept what the
    first question needed and dropped the rest falls after turn 1."""
    turns = sorted({int(t) for line in lines for t in (line.get("scores_by_turn") or {})})
    if not lines or not turns:
        return empty_figure("No turns scored yet.")
    fig = go.Figure()
    for index, line in enumerate(lines):
        scores = {int(t): v for t, v in (line.get("scores_by_turn") or {}).items()}
        fig.add_trace(go.Scatter(
            x=turns, y=[_score(scores.get(t)) for t in turns], name=str(line.get("label", "")), mode="lines+markers",
            connectgaps=False, cliponaxis=False, line={"color": _color(index), "width": 2.5}, marker={"size": 7},
            hovertemplate="<b>%{fullData.name}</b><br>Turn %{x}<br>Score: %{y:.1f}<extra></extra>",
        ))
    fig.update_xaxes(title_text="Turn (question about the same context)", tickmode="array", tickvals=turns,
                     showgrid=True)
    _score_axis(fig)
    return _style(fig, "Score by turn, one context read once", 420)
