"""The seed command creates v1, v2 and smoke from the spec file, and running it twice changes nothing."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from leaderboard.models import BenchmarkVersion, TaskSpec, VersionStatus

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # slow: seeds and hashes every published version
V1_PUBLISHED_HASH = "e14c76a7291ad55c9f9715be3065b26d1bccfc4053fcaba799c8d003ea59fd8f"
SMOKE_PUBLISHED_HASH = "368777ed7c2a011dd1adb507b214cd08aaeb953a362923603f50fb9fe877d032"


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_versions", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_seed_creates_published_v1_the_default_v2_and_smoke() -> None:
    seed()
    v1 = BenchmarkVersion.objects.get(slug="v1")
    v2 = BenchmarkVersion.objects.get(slug="v2")
    smoke = BenchmarkVersion.objects.get(slug="smoke")
    assert v2.is_default and v2.status == VersionStatus.PUBLISHED
    assert not v1.is_default and v1.status == VersionStatus.PUBLISHED
    assert v1.lengths == v2.lengths == [4096, 8192, 16384, 32768, 65536, 131072]
    assert smoke.status == VersionStatus.PUBLISHED and not smoke.is_default
    assert max(smoke.lengths) <= 4096
    spec = json.loads(Path(settings.SPEC_FILE).read_text())
    expected_keys = {v["slug"]: {t["key"] for t in v["tasks"]} for v in spec["versions"]}
    assert set(v1.tasks.values_list("key", flat=True)) == expected_keys["v1"]
    assert set(v2.tasks.values_list("key", flat=True)) == expected_keys["v2"]
    assert set(smoke.tasks.values_list("key", flat=True)) == expected_keys["smoke"]


def test_v1_configures_rulers_thirteen_tasks_and_ancestral_trace() -> None:
    seed()
    keys = set(BenchmarkVersion.objects.get(slug="v1").tasks.values_list("key", flat=True))
    ruler = {"niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
             "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2"}
    assert ruler <= keys
    assert any(key.startswith("ancestral") for key in keys - ruler)


def test_v1_and_smoke_keep_the_spec_hashes_they_were_published_with() -> None:
    # Template revisions came later as a parameter that is left out at its v1 default: the published specs, and
    # so what their scores mean, are exactly what they were.
    seed()
    hashes = dict(BenchmarkVersion.objects.values_list("slug", "spec_hash"))
    assert hashes["v1"] == V1_PUBLISHED_HASH
    assert hashes["smoke"] == SMOKE_PUBLISHED_HASH


def test_a_database_seeded_before_v2_gains_v2_and_keeps_v1_as_its_default(tmp_path: Path) -> None:
    spec = json.loads(Path(settings.SPEC_FILE).read_text())
    before = {"versions": [{**v, "is_default": True} for v in spec["versions"] if v["slug"] == "v1"]}
    old = tmp_path / "before.json"
    old.write_text(json.dumps(before))
    seed("--file", str(old))
    output = seed()
    assert "v1: unchanged" in output and "v2: created" in output
    assert BenchmarkVersion.objects.get(is_default=True).slug == "v1"  # staff choose when v2 becomes the default


def test_running_the_seed_twice_changes_nothing() -> None:
    seed()
    before = {v.slug: (v.pk, v.spec_hash, v.published_at) for v in BenchmarkVersion.objects.all()}
    tasks_before = TaskSpec.objects.count()
    output = seed()
    assert "v1: unchanged" in output and "v2: unchanged" in output and "smoke: unchanged" in output
    after = {v.slug: (v.pk, v.spec_hash, v.published_at) for v in BenchmarkVersion.objects.all()}
    assert after == before
    assert TaskSpec.objects.count() == tasks_before


def test_a_changed_spec_for_a_published_slug_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    seed()
    spec = json.loads(Path(settings.SPEC_FILE).read_text())
    spec["versions"][1]["seed"] += 1
    changed = tmp_path / "versions.json"
    changed.write_text(json.dumps(spec))
    stored = BenchmarkVersion.objects.get(slug=spec["versions"][1]["slug"])
    with pytest.raises(CommandError, match="disagree"):
        seed("--file", str(changed))
    assert BenchmarkVersion.objects.get(pk=stored.pk).seed == stored.seed


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ('{"versions": []}', "non-empty 'versions'"),
     ('{"versions": [{"slug": "x"}]}', "lacks title, seed, lengths, tasks")],
)
def test_a_bad_spec_file_is_refused_with_its_name(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=message) as err:
        seed("--file", str(path))
    assert str(path) in str(err.value)
    assert not BenchmarkVersion.objects.exists()


def test_an_invalid_task_in_the_spec_file_names_the_version_and_leaves_nothing(tmp_path: Path) -> None:
    spec = {"versions": [{"slug": "broken", "title": "Broken", "seed": 1, "lengths": [512],
                          "tasks": [{"key": "x", "type": "niah_single", "params": {"value_type": "emoji"}}]}]}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(CommandError, match=r"version 'broken'.*value_type"):
        seed("--file", str(path))
    assert not BenchmarkVersion.objects.filter(slug="broken").exists()
