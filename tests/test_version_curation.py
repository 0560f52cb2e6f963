"""Curating benchmark versions: publish (hash), freeze, retire, clone, default — in the ORM and in admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from leaderboard import versioning
from leaderboard.models import BenchmarkVersion, FrozenVersionError, TaskSpec, VersionStatus
from tests.factories import make_version, version_form_data

pytestmark = pytest.mark.django_db


def test_publishing_stores_the_hash_of_the_spec() -> None:
    version = versioning.publish(make_version())
    assert version.status == VersionStatus.PUBLISHED
    assert version.published_at is not None
    assert version.spec_hash == versioning.spec_hash(version)
    assert len(version.spec_hash) == 64


def test_spec_hash_ignores_cosmetics_and_changes_with_the_spec() -> None:
    a = make_version("a")
    b = make_version("b", title="Another title", notes="other notes")
    assert versioning.spec_hash(a) == versioning.spec_hash(b)
    c = make_version("c", seed=12)
    d = make_version("d", lengths=[512, 2048])
    assert len({versioning.spec_hash(x) for x in (a, c, d)}) == 3


def test_spec_hash_is_stable_across_processes_and_row_order() -> None:
    version = make_version(tasks=3)
    forward = versioning.hash_spec(versioning.spec_of(version, list(version.tasks.order_by("key"))))
    backward = versioning.hash_spec(versioning.spec_of(version, list(version.tasks.order_by("-key"))))
    assert forward == backward
    # The hash is of canonical JSON: recomputing it from a fresh query gives the same digest.
    assert versioning.spec_hash(BenchmarkVersion.objects.get(pk=version.pk)) == forward


def test_a_draft_without_tasks_cannot_be_published() -> None:
    with pytest.raises(ValidationError, match="no tasks"):
        versioning.publish(make_version(tasks=0))


@pytest.mark.parametrize(
    ("field", "value"),
    [("seed", 99), ("lengths", [512, 4096]), ("samples_per_cell", 50), ("params", {"reasoning": True}),
     ("kv_budgets", [1.0, 0.5])],
)
def test_saving_a_changed_published_version_is_refused(field: str, value: object) -> None:
    version = make_version(publish=True)
    setattr(version, field, value)
    with pytest.raises(FrozenVersionError, match="is published, so its"):
        version.save()
    stored = BenchmarkVersion.objects.get(pk=version.pk)
    assert getattr(stored, field) != value


def test_queryset_update_of_a_frozen_field_is_refused() -> None:
    version = make_version(publish=True)
    with pytest.raises(FrozenVersionError, match="seed"):
        BenchmarkVersion.objects.filter(pk=version.pk).update(seed=1)
    assert BenchmarkVersion.objects.get(pk=version.pk).seed == 11


def test_title_and_notes_of_a_published_version_can_change() -> None:
    version = make_version(publish=True)
    version.title = "Better title"
    version.notes = "More context."
    version.save()
    assert BenchmarkVersion.objects.get(pk=version.pk).title == "Better title"


def test_tasks_of_a_published_version_cannot_be_added_changed_or_removed() -> None:
    version = make_version(publish=True)
    task = version.tasks.get()
    task.params = {**task.params, "depth_percent": 10}
    with pytest.raises(FrozenVersionError, match="tasks"):
        task.save()
    with pytest.raises(FrozenVersionError):
        TaskSpec.objects.create(version=version, key="extra", task_type="niah_single", params={})
    with pytest.raises(FrozenVersionError):
        task.delete()
    with pytest.raises(FrozenVersionError):
        version.tasks.all().delete()
    with pytest.raises(FrozenVersionError):
        version.tasks.update(weight=2.0)
    assert version.tasks.count() == 1


def test_a_published_version_cannot_be_deleted() -> None:
    version = make_version(publish=True)
    with pytest.raises(FrozenVersionError, match="retire it instead"):
        version.delete()


def test_clone_makes_an_editable_draft_with_the_same_spec() -> None:
    source = make_version(publish=True, tasks=2)
    draft = versioning.clone(source)
    assert draft.status == VersionStatus.DRAFT and draft.cloned_from == source
    assert versioning.spec_hash(draft) == source.spec_hash
    draft.seed = 12
    draft.save()
    draft.tasks.filter(key="niah_0").delete()
    published = versioning.publish(draft)
    assert published.spec_hash != source.spec_hash


def test_only_one_published_version_is_default() -> None:
    a = make_version("a", publish=True)
    b = make_version("b", publish=True)
    versioning.make_default(a)
    versioning.make_default(b)
    assert list(BenchmarkVersion.objects.filter(is_default=True)) == [b]
    with pytest.raises(ValidationError, match="only a published version"):
        versioning.make_default(make_version("c"))


def test_database_refuses_two_defaults_or_a_draft_default() -> None:
    a = make_version("a", publish=True)
    versioning.make_default(a)
    b = make_version("b", publish=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        BenchmarkVersion.objects.filter(pk=b.pk).update(is_default=True)
    draft = make_version("c")
    with pytest.raises(IntegrityError), transaction.atomic():
        BenchmarkVersion.objects.filter(pk=draft.pk).update(is_default=True)


def test_retiring_keeps_the_version_browsable_but_not_the_default() -> None:
    version = make_version(publish=True)
    versioning.make_default(version)
    with pytest.raises(ValidationError, match="default version"):
        versioning.retire(version)
    other = make_version("other", publish=True)
    versioning.make_default(other)
    retired = versioning.retire(BenchmarkVersion.objects.get(pk=version.pk))
    assert retired.status == VersionStatus.RETIRED
    assert retired in BenchmarkVersion.objects.browsable()


def test_task_params_are_validated_by_the_benchmark_registry() -> None:
    version = make_version(tasks=0)
    with pytest.raises(ValidationError) as err:
        TaskSpec(version=version, key="bad", task_type="no_such_task", params={}).full_clean()
    assert "task_type" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        TaskSpec(version=version, key="bad", task_type="niah_single", params={"value_type": "emoji"}).full_clean()
    assert "value_type" in err.value.message_dict["params"][0]


def test_version_lists_are_validated() -> None:
    version = make_version(tasks=0, lengths=[1024, 512], kv_budgets=[0.0], kv_methods=["magic"])
    with pytest.raises(ValidationError) as err:
        version.full_clean()
    assert set(err.value.message_dict) == {"lengths", "kv_budgets", "kv_methods"}


# --- the same rules through the admin -------------------------------------------------------------

def test_spec_values_posted_to_a_published_versions_form_change_nothing(client, charlie) -> None:
    version = make_version(publish=True)
    client.force_login(charlie)
    url = f"/admin/leaderboard/benchmarkversion/{version.pk}/change/"
    response = client.post(url, version_form_data(version, seed=12345, lengths="4096",
                                                  **{"tasks-0-max_new_tokens": 64}))
    assert response.status_code == 302  # the spec inputs are not part of a frozen version's form
    stored = BenchmarkVersion.objects.get(pk=version.pk)
    assert (stored.seed, stored.lengths, stored.spec_hash) == (11, [512, 1024], version.spec_hash)
    assert version.tasks.get().max_new_tokens == 32


def test_admin_form_saves_a_title_change_on_a_published_version(client, charlie) -> None:
    version = make_version(publish=True)
    client.force_login(charlie)
    url = f"/admin/leaderboard/benchmarkversion/{version.pk}/change/"
    response = client.post(url, version_form_data(version, title="Renamed"))
    assert response.status_code == 302
    assert BenchmarkVersion.objects.get(pk=version.pk).title == "Renamed"


def test_admin_can_create_a_draft_with_tasks_and_publish_it(client, charlie) -> None:
    client.force_login(charlie)
    data = {
        "slug": "fresh", "title": "Fresh", "notes": "", "seed": 5, "lengths": "4K, 8192, 128K",
        "samples_per_cell": 10, "effective_length_threshold": 85.6, "kv_methods": ["full", "snapkv"],
        "kv_budgets": "1.0, 0.5, 0.25, 0.1", "params__query_aware": "false", "params__reasoning": "false",
        "tasks-TOTAL_FORMS": 1, "tasks-INITIAL_FORMS": 0, "tasks-MIN_NUM_FORMS": 0, "tasks-MAX_NUM_FORMS": 1000,
        "tasks-0-key": "niah_single_1", "tasks-0-task_type": "niah_single",
        "tasks-0-params__niah_single__value_type": "uuids", "tasks-0-weight": 1.0, "tasks-0-max_new_tokens": 128,
    }
    response = client.post("/admin/leaderboard/benchmarkversion/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    version = BenchmarkVersion.objects.get(slug="fresh")
    assert version.lengths == [4096, 8192, 131072] and version.kv_budgets == [1.0, 0.5, 0.25, 0.1]
    assert version.params == {}  # options left at their defaults are not stored
    task = version.tasks.get()
    assert task.category == "retrieval" and task.params["value_type"] == "uuids"
    response = client.post("/admin/leaderboard/benchmarkversion/",
                           {"action": "publish_versions", "_selected_action": [version.pk]}, follow=True)
    assert "Published 1 item" in response.content.decode()
    version.refresh_from_db()
    assert version.status == VersionStatus.PUBLISHED and version.spec_hash


def test_admin_actions_clone_retire_and_make_default(client, charlie) -> None:
    a = make_version("a", publish=True)
    b = make_version("b", publish=True)
    client.force_login(charlie)
    changelist = "/admin/leaderboard/benchmarkversion/"
    client.post(changelist, {"action": "make_default_version", "_selected_action": [a.pk]})
    assert BenchmarkVersion.objects.get(is_default=True) == a
    response = client.post(changelist, {"action": "retire_versions", "_selected_action": [a.pk]}, follow=True)
    assert "make another version the default first" in response.content.decode()
    client.post(changelist, {"action": "retire_versions", "_selected_action": [b.pk]})
    assert BenchmarkVersion.objects.get(pk=b.pk).status == VersionStatus.RETIRED
    client.post(changelist, {"action": "clone_versions", "_selected_action": [a.pk]})
    clone = BenchmarkVersion.objects.get(cloned_from=a)
    assert clone.status == VersionStatus.DRAFT and clone.tasks.count() == a.tasks.count()
