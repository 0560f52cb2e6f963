"""Reported versions: external benchmarks' published tables carried over figure for figure, with their sources;
our effective lengths and weighted averages computed from them and checked against the published ones; never a
submission; one model across benchmarks; the front page shows real models."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from leaderboard import metrics, published, reported
from leaderboard.demo_data import generate
from leaderboard.forms import SubmissionForm
from leaderboard.models import (
    BenchmarkVersion,
    LeaderboardRow,
    ModelKind,
    ReportedResult,
    Submission,
    VersionOrigin,
)
from leaderboard.submitting import SubmissionRefused, SubmissionRequest, create
from tests.factories import make_default_version, submission_post
from tests.test_leaderboard_browser import browser  # noqa: F401  (the watched Chromium fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # slow: loads the whole published tables in every test

DATA = reported.DATA_DIR

# Rows whose published figure disagrees with the one computed from the same row's published scores (the table's
# own inconsistencies; see the README).
DISAGREEING = {
    ("ruler", "EXAONE-4.0-1.2B* (1.2B)", "effective length"),  # 81.1 at 32K is under 85.6: 16K, printed 32K
    ("ruler", "Qwen2.5-7B-Instruct-1M* (7B)", "effective length"),  # 84.4 at 128K: 64K, printed >128K
    ("ruler", "Qwen3-14B* (14B)", "effective length"),  # 85.1 at 128K (underlined): 64K, printed >128K
    ("ruler", "Qwen3-8B* (8B)", "effective length"),  # 82.1 at 64K: 32K, printed 64K
    ("ruler", "Qwen3-4B* (4B)", "effective length"),  # 77.8 at 64K: 32K, printed 64K
    ("ruler", "Qwen2.5-14B-Instruct-1M* (14B)", "average"),  # the six scores average 95.2, printed 95.7
}


@pytest.fixture
def loaded():
    return reported.load()


def csv_rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "reported"
    shutil.copytree(DATA, target)
    return target


# --- the loader -----------------------------------------------------------------------------------------------

def test_every_row_and_every_published_figure_of_each_file_arrives(loaded) -> None:
    for spec in reported.read_manifest():
        version = BenchmarkVersion.objects.get(slug=spec.slug)
        assert version.origin == VersionOrigin.REPORTED and version.source_url == spec.source_url
        rows = csv_rows(spec.rows_file.name)
        results = {r.label: r for r in ReportedResult.objects.filter(version=version)}
        assert set(results) == {r["model"] for r in rows}
        for row in rows:
            result = results[row["model"]]
            assert result.source_url == spec.source_url and result.notes == row["notes"] and result.notes
            for n, column in zip(spec.lengths, spec.length_columns, strict=True):
                assert result.published["scores"][str(n)] == row[column]  # as printed
                expected = float(row[column]) if row[column] not in ("", "-") else None
                assert result.scores_by_length[str(n)] == expected
            for column in ("effective_length", "average", "wavg_inc", "wavg_dec", "base_score", "threshold"):
                assert result.published[column] == row[column]
            assert result.submission.model.kind == ModelKind.REPORTED
            assert LeaderboardRow.objects.filter(submission=result.submission).count() == 1


def test_the_two_tables_hold_at_least_sixty_models(loaded) -> None:
    counts = {o.slug: len(o.created) for o in loaded}
    assert counts == {"ruler": 53, "nolima": 12}
    assert LeaderboardRow.objects.filter(version__origin=VersionOrigin.REPORTED).count() >= 60


def test_loading_again_changes_nothing(loaded) -> None:
    before = list(LeaderboardRow.objects.order_by("pk").values_list("pk", "computed_at"))
    again = reported.load()
    assert all(not o.created and not o.updated and not o.removed and not o.version_created for o in again)
    assert list(LeaderboardRow.objects.order_by("pk").values_list("pk", "computed_at")) == before
    call_command("load_reported")
    assert list(LeaderboardRow.objects.order_by("pk").values_list("pk", "computed_at")) == before


def test_a_corrected_figure_updates_its_row_and_a_dropped_row_goes(tmp_path, loaded) -> None:
    folder = copy_data(tmp_path)
    lines = (folder / "nolima.csv").read_text().splitlines()
    lines[1] = lines[1].replace(",98.1,", ",97.1,")  # GPT-4o at 1K
    del lines[2]  # Llama 3.3 70B
    (folder / "nolima.csv").write_text("\n".join(lines) + "\n")
    outcome = {o.slug: o for o in reported.load(folder / "benchmarks.json")}["nolima"]
    assert outcome.updated == ["GPT-4o"] and outcome.removed == ["Llama 3.3 70B"] and outcome.unchanged == 10
    row = LeaderboardRow.objects.get(version__slug="nolima", model_name="GPT-4o")
    assert row.scores_by_length["1024"] == 97.1
    assert not Submission.objects.filter(model__display_name="Llama 3.3 70B").exists()


@pytest.mark.parametrize(("line", "bad", "words"), [
    (2, lambda r: r.replace(",99.6,", ",99,6,", 1), "fields"),
    (4, lambda r: r.replace(",99.6,", ",high,", 1), "'high' is not a score"),
    (5, lambda r: r.replace(",>128k,", ",forever,", 1), "effective_length 'forever'"),
    (2, lambda r: r.replace(",100.0,", ",100.5,", 1), "'100.5' is not a score from 0 to 100"),
])
def test_a_malformed_file_is_refused_naming_its_line_and_nothing_is_written(tmp_path, line, bad, words) -> None:
    folder = copy_data(tmp_path)
    lines = (folder / "ruler.csv").read_text().splitlines()
    changed = bad(lines[line - 1])
    assert changed != lines[line - 1]
    lines[line - 1] = changed
    (folder / "ruler.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(reported.ReportedFileError) as refused:
        reported.load(folder / "benchmarks.json")
    assert f"ruler.csv: line {line}:" in str(refused.value) and words in str(refused.value)
    assert not BenchmarkVersion.objects.filter(origin=VersionOrigin.REPORTED).exists()
    with pytest.raises(CommandError, match=f"line {line}"):
        call_command("load_reported", "--manifest", str(folder / "benchmarks.json"))


def test_a_duplicate_model_and_a_missing_base_score_are_refused(tmp_path) -> None:
    folder = copy_data(tmp_path)
    lines = (folder / "nolima.csv").read_text().splitlines()
    (folder / "nolima.csv").write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(reported.ReportedFileError, match="line 14: model 'GPT-4o' appears twice"):
        reported.load(folder / "benchmarks.json")
    lines[3] = lines[3].replace(",94.7,80.5,", ",,80.5,")
    (folder / "nolima.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(reported.ReportedFileError, match="line 4: base_score is needed"):
        reported.load(folder / "benchmarks.json")


def test_a_changed_description_of_a_loaded_version_is_refused(tmp_path, loaded) -> None:
    folder = copy_data(tmp_path)
    manifest = (folder / "benchmarks.json").read_text().replace('"effective_length_threshold": 85.6',
                                                                  '"effective_length_threshold": 80')
    (folder / "benchmarks.json").write_text(manifest)
    with pytest.raises(reported.ReportedFileError, match="version 'ruler' exists and describes something else"):
        reported.load(folder / "benchmarks.json")


# --- computed, never copied -------------------------------------------------------------------------------------

def test_computed_figures_equal_the_published_ones_wherever_the_table_is_consistent(loaded) -> None:
    found = set()
    compared = 0
    for row in LeaderboardRow.objects.filter(version__origin=VersionOrigin.REPORTED).select_related("version"):
        for check in row.checks:
            compared += 1
            if check["agreement"] == published.Agreement.DISAGREES:
                found.add((row.version.slug, row.reported["label"], check["figure"]))
        assert row.disagrees == any(c["agreement"] == "disagrees" for c in row.checks)
    assert found == DISAGREEING
    assert compared > 150  # effective length, average and both weighted averages of most RULER rows, NoLiMa's


def test_ruler_rows_get_rulers_absolute_rule_and_its_weighted_averages(loaded) -> None:
    row = LeaderboardRow.objects.get(version__slug="ruler", model_name="Llama3.1 (70B)")
    assert row.effective_length == 65536 and row.reported["published"]["effective_length"] == "64K"
    assert round(row.wavg_inc, 1) == 85.5 and round(row.wavg_dec, 1) == 93.7 and round(row.average, 1) == 89.6
    every = LeaderboardRow.objects.get(version__slug="ruler", model_name="Jamba-1.5-large (94B/398B)")
    assert every.effective_length == 131072  # ">128k": every length passes
    none = LeaderboardRow.objects.get(version__slug="ruler", model_name="LWM (7B)")
    assert none.effective_length is None and none.reported["effective_decided"]  # "<4K"


def test_nolima_rows_get_a_threshold_relative_to_their_own_base_score(loaded) -> None:
    gpt = LeaderboardRow.objects.get(version__slug="nolima", model_name="GPT-4o")
    assert gpt.threshold == pytest.approx(0.85 * 99.3)
    assert gpt.effective_length == 8192  # 89.2 at 8K >= 84.4; 81.6 at 16K is not
    small = LeaderboardRow.objects.get(version__slug="nolima", model_name="Llama 3.1 8B")
    assert small.effective_length == 1024  # 65.7 >= 65.2 at 1K, 54.4 at 2K is not; an absolute 85.6 gives none
    assert metrics.effective_length({1024: 65.7, 2048: 54.4}, 85.6) is None


def test_a_row_with_a_missing_length_is_partial_and_its_effective_length_decided_before_the_gap(loaded) -> None:
    row = LeaderboardRow.objects.get(version__slug="ruler", model_name="EXAONE-4.0-1.2B (1.2B)")
    assert row.is_partial and "128K" in row.partial_reason and row.average is None
    assert row.effective_length == 16384
    threshold_row = LeaderboardRow.objects.get(version__slug="ruler", model_name="Llama2 (7B)")
    assert threshold_row.effective_length is None and not threshold_row.reported["effective_decided"]


@pytest.mark.parametrize(("scores", "expected"), [
    ({1: 90, 2: 80, 3: None}, (1, True)),
    ({1: 90, 2: None, 3: 10}, (1, False)),
    ({1: 80, 2: 90}, (None, True)),
    ({1: 90, 2: 95}, (2, True)),
])
def test_a_gap_in_published_scores_is_not_a_failure(scores, expected) -> None:
    assert metrics.effective_length_decided(scores, 85.0) == expected


@pytest.mark.parametrize(("text", "parsed"), [
    ("32K", ("", 32768)), (">128k", (">", 131072)), ("<4K", ("<", 4096)), ("1M", ("", 1048576)), ("", None),
    ("TBD", None),
])
def test_published_lengths_are_read_as_printed(text, parsed) -> None:
    assert published.parse_length(text) == parsed


# --- no submissions -----------------------------------------------------------------------------------------------

def test_a_reported_version_is_never_offered_in_the_submission_form(loaded, client, alice) -> None:
    make_default_version("t1")
    form = SubmissionForm()
    assert list(form.fields["version"].queryset.values_list("slug", flat=True)) == ["t1"]
    client.force_login(alice)
    page = client.get("/submit/").content.decode()
    assert 'value="ruler"' not in page and 'value="nolima"' not in page
    response = client.post("/submit/", submission_post(version="ruler"))
    assert "version" in response.context["form"].errors
    assert not Submission.objects.filter(submitter=alice).exists()


def test_the_versions_list_says_a_reported_version_is_reported_not_a_grid_of_ours(loaded, client) -> None:
    page = client.get("/versions/").content.decode()
    assert "Reported by RULER's authors, not measured here" in page
    assert "13 <small>as published</small>" in page and "0</td>" not in page
    board = client.get("/?version=ruler").content.decode()
    assert "loaded " in board  # a reported row's date is when it was loaded here, not a run's


def test_a_reported_version_cannot_receive_a_submission(loaded, alice) -> None:
    version = BenchmarkVersion.objects.get(slug="ruler")
    request = SubmissionRequest(kind=ModelKind.ENDPOINT, display_name="Sneaky", version=version,
                                claimed_context=131072, endpoint_url="https://example.org/v1",
                                api_model_name="m")
    with pytest.raises(SubmissionRefused, match="takes no submissions"):
        create(alice, request)
    assert not Submission.objects.filter(submitter=alice).exists()


def test_a_reported_version_cannot_be_the_default(loaded) -> None:
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        BenchmarkVersion.objects.filter(slug="ruler").update(is_default=True)


# --- pages --------------------------------------------------------------------------------------------------------

def test_the_model_page_of_a_model_in_two_tables_shows_both_labelled(loaded, client) -> None:
    nolima = LeaderboardRow.objects.get(version__slug="nolima", model_name="Llama 3.1 8B")
    ruler = LeaderboardRow.objects.get(version__slug="ruler", model_name="Llama3.1 (8B)")
    page = client.get(f"/models/{nolima.submission_id}/").content.decode()
    assert f'href="/models/{ruler.submission_id}/"' in page
    assert "Reported by RULER&#x27;s authors, not measured here" in page
    assert "Reported by the benchmark's authors, not measured here" in page
    other = client.get(f"/models/{ruler.submission_id}/").content.decode()
    assert f'href="/models/{nolima.submission_id}/"' in other and "NoLiMa&#x27;s authors" in other


def test_a_measured_model_page_lists_its_reported_results(loaded, client) -> None:
    from tests.factories import make_completed

    version = make_default_version("t1")
    sub = make_completed(version, "My Llama run", dict.fromkeys(version.lengths, 90.0), kind="huggingface",
                         hf_repo="x/y")
    sub.model.hf_repo = "meta-llama/Llama-3.1-8B-Instruct"
    sub.model.model_key = ""
    sub.model.save()
    page = client.get(f"/models/{sub.pk}/").content.decode()
    assert "This model on other benchmarks" in page and "Llama3.1 (8B)" in page and "Llama 3.1 8B" in page


def test_a_reported_row_page_shows_its_source_notes_and_the_disagreement(loaded, client) -> None:
    row = LeaderboardRow.objects.get(version__slug="ruler", model_name="Qwen3-14B (14B)")
    page = client.get(f"/models/{row.submission_id}/").content.decode()
    assert "https://github.com/NVIDIA/RULER/blob/ebe802cd6c0a12684ddebc6a9ec603282b42ce2c/README.md" in page
    assert "https://arxiv.org/pdf/2505.09388" in page
    assert "disagrees with itself" in page and "&gt;128K" in page and "65536" in page


def test_the_front_page_shows_real_models_with_sources_and_no_demo_rows_by_default(loaded, client) -> None:
    make_default_version("t1")  # the default version has no real model yet
    page = client.get("/").content.decode()
    assert "Reported by the benchmark's authors, not measured here." in page
    assert "Yi (34B)" in page and 'href="https://github.com/NVIDIA/RULER/blob/' in page
    assert "published figure disagrees" in page and "pub. 95.7" in page
    assert "NoLiMa, as published by its authors" in page  # the other board is linked
    assert "Demo data" not in page


def test_demo_rows_are_opt_in_and_always_marked(loaded, client) -> None:
    version = make_default_version("t1", tasks=2, lengths=[4096, 8192])
    generate(version, count=2, seed=1)
    page = client.get("/?version=t1").content.decode()
    assert page.count('class="badge warn demo"') == LeaderboardRow.objects.filter(
        version=version, organisation="Demo data").count() > 0
    assert "Yi (34B)" in client.get("/").content.decode()  # demo rows alone do not make the front page


# --- in a browser -------------------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_first_page_after_make_run_shows_real_models_with_sources(live_server, browser) -> None:  # noqa: F811
    from tests.test_leaderboard_browser import ARTIFACTS

    call_command("seed_versions")  # what `make run` does before serving, with DEMO_MODELS at its default of 0
    call_command("load_reported")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(live_server.url + "/")
    page.wait_for_selector(".chart .js-plotly-plot")
    assert "Reported by the benchmark's authors, not measured here." in page.inner_text(".reported-notice")
    names = page.locator("table.board tbody th[scope=row] > a").all_inner_texts()
    assert len(names) >= 50 and "Gemini-1.5-pro" in names and "Llama3.1 (70B)" in names
    sources = page.locator("table.board tbody a:text('source')")
    assert sources.count() == len(names)
    assert sources.first.get_attribute("href").startswith("https://github.com/NVIDIA/RULER/blob/ebe802c")
    assert page.locator("text=Demo data").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reported-front-page.png"))
    page.click("text=NoLiMa, as published by its authors")
    page.wait_for_selector("table.board")
    assert "GPT-4o" in page.locator("table.board tbody th[scope=row] > a").all_inner_texts()
    page.click("table.board tbody th[scope=row] > a:text-is('Llama 3.1 8B')")
    page.wait_for_selector("#elsewhere")
    assert "Llama3.1 (8B)" in page.inner_text("#elsewhere")
    page.screenshot(path=str(ARTIFACTS / "reported-model.png"), full_page=True)
