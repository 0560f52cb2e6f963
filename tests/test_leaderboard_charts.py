"""The leaderboard's Plotly figures: their data, axes and HTML, checked on hand-made inputs (no database)."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from leaderboard import charts

LENGTHS = [4096, 8192, 16384, 32768]


def line_traces(fig: go.Figure) -> list[go.Scatter]:
    return [t for t in fig.data if t.mode == "lines+markers"]


def band_traces(fig: go.Figure) -> list[go.Scatter]:
    return [t for t in fig.data if t.fill == "toself"]


def is_empty_state(fig: go.Figure) -> bool:
    return not fig.data and len(fig.layout.annotations) == 1 and fig.layout.xaxis.visible is False


@pytest.mark.parametrize(
    ("n", "label"),
    [(512, "512"), (1000, "1000"), (1024, "1K"), (1536, "1.5K"), (4096, "4K"), (131072, "128K"),
     (1048576, "1M"), (2097152, "2M")],
)
def test_length_label_uses_binary_k_and_m(n: int, label: str) -> None:
    assert charts.length_label(n) == label


def test_degradation_traces_carry_input_scores_with_none_for_gaps() -> None:
    rows = [
        {"label": "model-a", "scores_by_length": {"4096": 95.0, "8192": 90.5, "16384": None, "32768": 70.25}},
        {"label": "model-b", "scores_by_length": {4096: 88.0, 8192: 80.0}},
    ]
    fig = charts.degradation_figure(rows, LENGTHS)
    a, b = line_traces(fig)
    assert a.name == "model-a" and b.name == "model-b"
    assert list(a.x) == LENGTHS and list(b.x) == LENGTHS
    assert list(a.y) == [95.0, 90.5, None, 70.25]
    assert list(b.y) == [88.0, 80.0, None, None]
    assert a.connectgaps is False
    assert a.line.color != b.line.color


def test_degradation_treats_nan_scores_as_gaps() -> None:
    rows = [{"label": "m", "scores_by_length": {4096: float("nan"), 8192: 50}}]
    (trace,) = line_traces(charts.degradation_figure(rows, [4096, 8192]))
    assert list(trace.y) == [None, 50.0]


def test_degradation_length_axis_is_log_with_k_tick_labels_and_score_axis_0_to_100() -> None:
    fig = charts.degradation_figure([{"label": "m", "scores_by_length": {4096: 1}}], [4096, 131072, 8192])
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == [4096, 8192, 131072]
    assert list(fig.layout.xaxis.ticktext) == ["4K", "8K", "128K"]
    assert fig.layout.xaxis.title.text == "Context length (tokens)"
    assert list(fig.layout.yaxis.range) == [0, 100]
    assert fig.layout.yaxis.title.text == "Score (0–100)"
    assert fig.layout.template.layout.paper_bgcolor == "white"


def test_degradation_hover_shows_label_length_label_and_one_decimal_score() -> None:
    fig = charts.degradation_figure([{"label": "m", "scores_by_length": {4096: 1}}], [4096, 8192])
    (trace,) = line_traces(fig)
    assert list(trace.customdata) == ["4K", "8K"]
    assert "%{fullData.name}" in trace.hovertemplate
    assert "%{customdata}" in trace.hovertemplate
    assert "%{y:.1f}" in trace.hovertemplate


def test_degradation_threshold_is_a_dashed_line_at_that_score_with_its_annotation() -> None:
    fig = charts.degradation_figure([{"label": "m", "scores_by_length": {4096: 90}}], LENGTHS, threshold=85.6)
    (shape,) = fig.layout.shapes
    assert shape.y0 == shape.y1 == 85.6
    assert shape.line.dash == "dash"
    assert [a.text for a in fig.layout.annotations] == ["effective-length threshold (85.6)"]


def test_degradation_without_threshold_draws_no_line() -> None:
    fig = charts.degradation_figure([{"label": "m", "scores_by_length": {4096: 90}}], LENGTHS)
    assert not fig.layout.shapes


def test_degradation_confidence_interval_is_a_translucent_band_in_the_line_colour() -> None:
    rows = [{
        "label": "m",
        "scores_by_length": {4096: 90, 8192: 80, 16384: 70},
        "ci_by_length": {"4096": [88, 92], "8192": [77, 83], "16384": [65, 75]},
    }]
    fig = charts.degradation_figure(rows, [4096, 8192, 16384])
    (band,) = band_traces(fig)
    (line,) = line_traces(fig)
    assert list(band.x) == [4096, 8192, 16384, 16384, 8192, 4096]
    assert list(band.y) == [92, 83, 75, 65, 77, 88]
    assert band.showlegend is False and band.legendgroup == line.legendgroup == "m"
    red, green, blue = (int(line.line.color[i:i + 2], 16) for i in (1, 3, 5))
    assert band.fillcolor.startswith(f"rgba({red},{green},{blue},")
    assert fig.data.index(band) < fig.data.index(line), "band must be drawn under its line"


def test_degradation_band_breaks_where_the_interval_is_missing() -> None:
    rows = [{
        "label": "m",
        "scores_by_length": dict.fromkeys(LENGTHS, 50),
        "ci_by_length": {4096: [40, 60], 8192: None, 16384: [45, 55], 32768: [42, 58]},
    }]
    (band,) = band_traces(charts.degradation_figure(rows, LENGTHS))
    assert list(band.x) == [4096, 4096, None, 16384, 32768, 32768, 16384]
    assert list(band.y) == [60, 40, None, 55, 58, 42, 45]


def test_degradation_without_rows_or_lengths_is_an_empty_state() -> None:
    assert is_empty_state(charts.degradation_figure([], LENGTHS))
    assert is_empty_state(charts.degradation_figure([{"label": "m", "scores_by_length": {}}], []))


def test_task_heatmap_rows_are_tasks_in_order_and_columns_length_labels() -> None:
    task_scores = {
        "niah_single": {"4096": 100.0, "8192": 97.25},
        "vt": {4096: 80.04, 8192: None},
        "cwe": {8192: 33.333},
    }
    fig = charts.task_heatmap_figure(task_scores, [4096, 8192])
    (heat,) = fig.data
    assert list(heat.y) == ["niah_single", "vt", "cwe"]
    assert list(heat.x) == ["4K", "8K"]
    assert [list(r) for r in heat.z] == [[100.0, 97.25], [80.04, None], [None, 33.333]]
    assert [list(r) for r in heat.text] == [["100.0", "97.2"], ["80.0", "–"], ["–", "33.3"]]
    assert (heat.zmin, heat.zmax) == (0, 100)
    assert fig.layout.yaxis.autorange == "reversed", "the first task must be the top row"


def test_task_heatmap_colour_scale_runs_red_to_green() -> None:
    (heat,) = charts.task_heatmap_figure({"t": {4096: 50}}, [4096]).data
    low, high = heat.colorscale[0][1], heat.colorscale[-1][1]
    assert int(low[1:3], 16) > int(low[3:5], 16), "low scores should be red"
    assert int(high[3:5], 16) > int(high[1:3], 16), "high scores should be green"


def test_task_curves_draw_one_line_per_task_on_the_log_length_axis() -> None:
    fig = charts.task_curves_figure({"a": {4096: 90, 8192: 80}, "b": {"8192": 40}}, [4096, 8192])
    traces = line_traces(fig)
    assert [t.name for t in traces] == ["a", "b"]
    assert [list(t.y) for t in traces] == [[90, 80], [None, 40]]
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.ticktext) == ["4K", "8K"]


def budget_points() -> list[dict]:
    return [
        {"method": "snapkv", "budget": 0.1, "score": 60.0},
        {"method": "snapkv", "budget": 0.5, "score": 85.0},
        {"method": "snapkv", "budget": 0.25, "score": 75.0},
        {"method": "snapkv", "budget": 1.0, "score": 90.0},
        {"method": "streamingllm", "budget": 0.5, "score": 70.0},
        {"method": "streamingllm", "budget": 0.1, "score": None},
        {"method": "full", "budget": 1.0, "score": 91.0},
    ]


def test_budget_x_values_are_percent_kept_sorted_from_full_down() -> None:
    fig = charts.budget_figure(budget_points())
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["snapkv"].x) == [100, 50, 25, 10]
    assert list(by_name["snapkv"].y) == [90, 85, 75, 60]
    assert list(by_name["streamingllm"].x) == [50], "a missing score is left out"


def test_budget_axis_is_reversed_with_percent_tick_labels() -> None:
    fig = charts.budget_figure(budget_points())
    assert fig.layout.xaxis.autorange == "reversed"
    assert list(fig.layout.xaxis.ticktext) == ["100%", "50%", "25%", "10%"]
    assert list(fig.layout.yaxis.range) == [0, 100]


def test_budget_full_cache_is_a_dashed_reference_line_across_the_x_range() -> None:
    fig = charts.budget_figure(budget_points())
    (full,) = [t for t in fig.data if t.name == "full cache"]
    assert list(full.y) == [91.0, 91.0]
    assert sorted(full.x) == [10, 100]
    assert full.line.dash == "dash"
    assert "full" not in {t.name for t in fig.data}


def test_budget_averages_repeated_points_of_a_method() -> None:
    fig = charts.budget_figure([
        {"method": "h2o", "budget": 0.5, "score": 60}, {"method": "h2o", "budget": 0.5, "score": 80},
    ])
    (trace,) = fig.data
    assert list(trace.x) == [50] and list(trace.y) == [70]


def test_budget_without_scores_is_an_empty_state() -> None:
    assert is_empty_state(charts.budget_figure([]))
    assert is_empty_state(charts.budget_figure([{"method": "x", "budget": 0.5, "score": None}]))


PARETO_POINTS = [
    {"method": "full", "budget": 1.0, "score": 90, "kv_bytes": 1000},
    {"method": "snapkv", "budget": 0.5, "score": 88, "kv_bytes": 500},
    {"method": "snapkv", "budget": 0.25, "score": 80, "kv_bytes": 250},
    {"method": "streamingllm", "budget": 0.5, "score": 70, "kv_bytes": 500},  # beaten by snapkv at 500
    {"method": "h2o", "budget": 0.25, "score": 80, "kv_bytes": 300},  # same score as snapkv, more bytes
    {"method": "tova", "budget": 0.1, "score": 50, "kv_bytes": 100},
    {"method": "think", "budget": 0.1, "score": 50, "kv_bytes": 100},  # ties tova: neither dominates
    {"method": "pyramidkv", "budget": 0.5, "score": 95, "kv_bytes": None},  # unmeasured: ignored
]


def test_pareto_front_keeps_only_undominated_points_ordered_by_bytes() -> None:
    front = charts.pareto_front(PARETO_POINTS)
    assert [(p["method"], p["kv_bytes"]) for p in front] == [
        ("tova", 100), ("think", 100), ("snapkv", 250), ("snapkv", 500), ("full", 1000),
    ]


def test_pareto_front_drops_a_point_beaten_on_bytes_alone_or_score_alone() -> None:
    front = charts.pareto_front([
        {"method": "a", "score": 80, "kv_bytes": 100},
        {"method": "b", "score": 80, "kv_bytes": 200},
        {"method": "c", "score": 70, "kv_bytes": 100},
    ])
    assert [p["method"] for p in front] == ["a"]


def test_pareto_front_of_nothing_is_empty() -> None:
    assert charts.pareto_front([]) == []
    assert charts.pareto_front([{"method": "a", "score": None, "kv_bytes": 1}]) == []


def test_pareto_figure_plots_measured_points_per_method_and_the_front_as_a_step_line() -> None:
    fig = charts.pareto_figure(PARETO_POINTS)
    (front,) = [t for t in fig.data if t.name == "Pareto front"]
    assert list(front.x) == [100, 100, 250, 500, 1000]
    assert list(front.y) == [50, 50, 80, 88, 90]
    assert front.line.shape == "hv"
    markers = {t.name: t for t in fig.data if t.mode == "markers"}
    assert "pyramidkv" not in markers
    assert list(markers["snapkv"].x) == [250, 500] and list(markers["snapkv"].y) == [80, 88]
    assert markers["snapkv"].customdata[0][0] == pytest.approx(250 / 2**20)
    assert "MiB" in markers["snapkv"].hovertemplate
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.ticksuffix == "B"


def test_pareto_figure_without_measurements_is_an_empty_state() -> None:
    assert is_empty_state(charts.pareto_figure([{"method": "a", "budget": 1, "score": 5, "kv_bytes": None}]))


DEPTH_SAMPLES = [
    {"length": 4096, "depth_percent": 0, "score": 100},
    {"length": 4096, "depth_percent": 5, "score": 0},
    {"length": 4096, "depth_percent": 10, "score": 100},  # exactly 10 belongs to the 10-20 bin
    {"length": 4096, "depth_percent": 100, "score": 40},  # exactly 100 belongs to the last bin
    {"length": 4096, "depth_percent": 95, "score": 80},
    {"length": 8192, "depth_percent": 50.0, "score": 25},
    {"length": 8192, "depth_percent": None, "score": 0},  # no depth: skipped
    {"length": 8192, "depth_percent": 55, "score": None},  # no score: skipped
    {"length": 65536, "depth_percent": 50, "score": 0},  # length not asked for: skipped
]


def test_depth_grid_means_scores_per_depth_bin_and_length() -> None:
    grid = charts.depth_grid(DEPTH_SAMPLES, [4096, 8192])
    assert list(grid.index) == ["0–10%", "10–20%", "20–30%", "30–40%", "40–50%",
                                "50–60%", "60–70%", "70–80%", "80–90%", "90–100%"]
    assert list(grid.columns) == [4096, 8192]
    assert grid.loc["0–10%", 4096] == 50
    assert grid.loc["10–20%", 4096] == 100
    assert grid.loc["90–100%", 4096] == 60
    assert grid.loc["50–60%", 8192] == 25
    assert int(grid.notna().sum().sum()) == 4
    assert math.isnan(grid.loc["50–60%", 4096])


def test_depth_grid_without_samples_is_all_nan_with_the_full_shape() -> None:
    grid = charts.depth_grid([], [4096, 8192])
    assert grid.shape == (10, 2)
    assert grid.isna().all().all()
    assert list(grid.dtypes) == [float, float]


def test_depth_heatmap_shows_the_grid_with_depth_0_on_top() -> None:
    fig = charts.depth_heatmap_figure(DEPTH_SAMPLES, [4096, 8192])
    (heat,) = fig.data
    assert list(heat.x) == ["4K", "8K"]
    assert heat.y[0] == "0–10%" and heat.y[-1] == "90–100%"
    assert fig.layout.yaxis.autorange == "reversed"
    expected = charts.depth_grid(DEPTH_SAMPLES, [4096, 8192])
    z = pd.DataFrame([list(r) for r in heat.z], index=expected.index, columns=expected.columns, dtype=float)
    pd.testing.assert_frame_equal(z, expected)
    assert heat.text[0][0] == "50" and heat.text[0][1] == "–"
    assert (heat.zmin, heat.zmax) == (0, 100)


def test_depth_heatmap_without_samples_is_an_empty_state() -> None:
    assert is_empty_state(charts.depth_heatmap_figure([], [4096]))


def test_empty_figure_centres_the_message_and_hides_axes() -> None:
    fig = charts.empty_figure("Nothing here yet.")
    (note,) = fig.layout.annotations
    assert note.text == "Nothing here yet." and (note.x, note.y) == (0.5, 0.5)
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False


def test_every_figure_uses_the_white_template_and_a_sensible_height() -> None:
    figures = [
        charts.degradation_figure([{"label": "m", "scores_by_length": {4096: 1}}], LENGTHS),
        charts.task_heatmap_figure({"t": {4096: 1}}, LENGTHS),
        charts.task_curves_figure({"t": {4096: 1}}, LENGTHS),
        charts.budget_figure(budget_points()),
        charts.pareto_figure(PARETO_POINTS),
        charts.depth_heatmap_figure(DEPTH_SAMPLES, LENGTHS),
        charts.empty_figure("x"),
    ]
    for fig in figures:
        assert fig.layout.template.layout.paper_bgcolor == "white"
        assert 300 <= fig.layout.height <= 900


def test_to_div_is_a_bare_div_without_plotly_js_and_with_our_config() -> None:
    html = charts.to_div(charts.degradation_figure([{"label": "m", "scores_by_length": {4096: 1}}], LENGTHS))
    assert html.lstrip().startswith("<div")
    assert "<html" not in html
    assert "cdn.plot.ly" not in html and "<script src" not in html
    assert '"displaylogo": false' in html and '"responsive": true' in html


def test_to_div_carries_no_executable_script_only_a_json_block_its_div_names() -> None:
    fig = charts.degradation_figure([{"label": "m", "scores_by_length": {4096: 1, 8192: 0.5}}], LENGTHS)
    html = charts.to_div(fig)
    match = re.fullmatch(r'<div class="plotly-chart" data-figure="([\w-]+)"></div>'
                         r'<script type="application/json" id="([\w-]+)">(.*)</script>', html, re.S)
    assert match is not None, html[:300]
    assert match.group(1) == match.group(2)
    figure = json.loads(match.group(3))
    assert figure["config"] == charts.PLOTLY_CONFIG
    assert next(t["name"] for t in figure["data"] if t.get("name")) == "m"
    assert "Plotly.newPlot" not in html and "<script>" not in html


def test_to_div_does_not_emit_a_label_as_raw_html() -> None:
    evil = "<script>alert(1)</script><!--"
    html = charts.to_div(charts.degradation_figure([{"label": evil, "scores_by_length": {4096: 1}}], LENGTHS))
    block = html.split('">', 2)[2].removesuffix("</script>")
    assert "alert(1)" in block and "<" not in block and ">" not in block  # cannot end the data block early
    assert any(t.get("name") == evil for t in json.loads(block)["data"])  # the label survives, as data
