"""Curating a version in the admin without JSON: structured fields that round-trip and refuse bad values on the
field, a frozen version read-only with its clone action, and a clone's differences task by task."""

from __future__ import annotations

import html as htmllib
import re
from html.parser import HTMLParser

import pytest

from evalworkers.kv import registry as kv_registry
from leaderboard import versioning
from leaderboard.models import BenchmarkVersion, TaskSpec
from tests.factories import make_version, task_param_inputs, version_form_data

pytestmark = pytest.mark.django_db


def change_url(version: BenchmarkVersion) -> str:
    return f"/admin/leaderboard/benchmarkversion/{version.pk}/change/"


def form_errors(response) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


def row_errors(response, row: int = 0) -> dict[str, list[str]]:
    formset = response.context["inline_admin_formsets"][0].formset
    return {name: list(errors) for name, errors in formset.forms[row].errors.items()}


def editable_names(html: str) -> set[str]:
    """Names of the inputs a user can change (hidden inputs and the CSRF token left out)."""
    tags = re.findall(r"<(?:input|select|textarea)\b[^>]*>", html)
    return {re.search(r'name="([^"]+)"', t)[1] for t in tags
            if 'name="' in t and 'type="hidden"' not in t and "csrfmiddlewaretoken" not in t}


class FormValues(HTMLParser):
    """What a browser would post from a form: inputs, checked boxes, selected options and text areas."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.values.append((name, a.get("value") or ("on" if a.get("type") == "checkbox" else "")))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values.append((self._select, a.get("value", "")))
        elif tag == "textarea":
            self._textarea = name
            self.values.append((name, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            name, text = self.values.pop()
            self.values.append((name, text + data))


def rendered_form(html: str) -> dict[str, list[str]]:
    """The main change form's values, skipping the empty template row the admin clones for "Add another"."""
    parser = FormValues()
    parser.feed(html.split('id="benchmarkversion_form"')[1].split("</form>")[0])
    out: dict[str, list[str]] = {}
    for name, value in parser.values:
        if "__prefix__" not in name:
            out.setdefault(name, []).append(value)
    return out


def test_a_drafts_structured_fields_show_the_stored_spec_and_saving_them_changes_nothing(client, charlie) -> None:
    version = make_version(kv_methods=["full", "snapkv", "think"], kv_budgets=[1.0, 0.5],
                           kv_method_budgets={"think": [0.8, 0.7]}, params={"query_aware": False})
    task = version.tasks.get()
    task.params = {**task.params, "depth_percent": 10}
    task.full_clean()
    task.save()
    before = versioning.spec_hash(version)
    client.force_login(charlie)
    html = client.get(change_url(version)).content.decode()
    assert 'name="lengths" value="512, 1024"' in html
    assert re.search(r'name="kv_methods" value="think"[^>]*checked', html)
    assert 'name="kv_method_budgets__think" id="id_kv_method_budgets__think" value="0.8, 0.7"' in html
    assert 'name="tasks-0-params__niah_single__depth_percent" id="id_tasks-0-params__niah_single__depth_percent" ' \
           'value="10"' in html
    response = client.post(change_url(version), version_form_data(version))
    assert response.status_code == 302, form_errors(response) if response.context else response
    version.refresh_from_db()
    assert versioning.spec_hash(version) == before
    assert version.params == {"query_aware": False}


@pytest.mark.parametrize(("lengths", "message"), [
    ("1024, 512", "ascending order: 512, 1024"),
    ("512, 512", "List each length once"),
    ("4K, lots", "'lots' is not a token count"),
    ("512, 2M", "past the longest length"),
    ("", "Give at least one length"),
])
def test_bad_lengths_are_refused_on_the_lengths_field(client, charlie, lengths: str, message: str) -> None:
    version = make_version()
    client.force_login(charlie)
    response = client.post(change_url(version), version_form_data(version, lengths=lengths))
    assert response.status_code == 200
    assert message in " ".join(form_errors(response)["lengths"])
    assert BenchmarkVersion.objects.get(pk=version.pk).lengths == [512, 1024]


def test_lengths_written_in_k_are_token_counts() -> None:
    from leaderboard.spec_fields import parse_lengths

    assert parse_lengths("4K, 8k 16384; 1M") == [4096, 8192, 16384, 1 << 20]


def test_a_shortest_length_a_task_cannot_fit_is_refused_naming_the_lengths(client, charlie) -> None:
    version = make_version()
    client.force_login(charlie)
    response = client.post(change_url(version), version_form_data(version, lengths="64, 1024"))
    assert response.status_code == 200
    assert any(m.startswith("Lengths: 64 tokens is too short for niah_0 (niah_single) with 32 new tokens")
               for m in row_errors(response)["__all__"])
    assert BenchmarkVersion.objects.get(pk=version.pk).lengths == [512, 1024]


def test_kv_methods_are_choices_from_the_registry(client, charlie) -> None:
    version = make_version()
    client.force_login(charlie)
    html = client.get(change_url(version)).content.decode()
    assert set(re.findall(r'name="kv_methods" value="([a-z_]+)"', html)) == set(kv_registry.METHODS)
    response = client.post(change_url(version), version_form_data(version, kv_methods=["full", "magic"]))
    assert "magic is not one of the available choices" in " ".join(form_errors(response)["kv_methods"])


def test_a_budget_a_method_cannot_honour_is_refused_on_its_own_field(client, charlie) -> None:
    version = make_version(kv_methods=["full", "think"], kv_budgets=[1.0], kv_method_budgets={"think": [0.8]})
    client.force_login(charlie)
    response = client.post(change_url(version), version_form_data(version, kv_method_budgets__think="0.8, 0.5"))
    assert "think: think cannot run at budget 0.5" in " ".join(form_errors(response)["kv_method_budgets"])
    response = client.post(change_url(version), version_form_data(version, kv_method_budgets__think="",
                                                                  kv_budgets="1, 0.25"))
    assert "think cannot run at budget 0.25" in " ".join(form_errors(response)["kv_budgets"])
    response = client.post(change_url(version), version_form_data(version, kv_budgets="1, 1.5"))
    assert "1.5 is not a fraction" in " ".join(form_errors(response)["kv_budgets"])
    assert BenchmarkVersion.objects.get(pk=version.pk).kv_method_budgets == {"think": [0.8]}


def test_each_methods_budget_input_says_what_the_registry_accepts(client, charlie) -> None:
    client.force_login(charlie)
    html = client.get("/admin/leaderboard/benchmarkversion/add/").content.decode()
    think = kv_registry.METHODS["think"].budgets
    assert f"honours {think.interval()}; offered at 0.8, 0.75, 0.7" in html
    assert "kv_method_budgets__full" not in html  # the full cache has no budgets of its own


def test_version_options_are_inputs_and_only_changed_ones_are_stored(client, charlie) -> None:
    version = make_version()
    client.force_login(charlie)
    response = client.post(change_url(version), version_form_data(
        version, lengths="4K, 8K", params__reasoning="true", params__reasoning_extra_tokens="2048",
        params__system_prompt="Be brief."))
    assert response.status_code == 302, (form_errors(response), row_errors(response))
    assert BenchmarkVersion.objects.get(pk=version.pk).params == {
        "reasoning": True, "reasoning_extra_tokens": 2048, "system_prompt": "Be brief."}
    response = client.post(change_url(version), version_form_data(version, lengths="512, 1024",
                                                                  params__reasoning_extra_tokens="0"))
    assert "options.reasoning_extra_tokens: must be at least 1" in " ".join(form_errors(response)["params"])


def test_task_params_are_inputs_generated_from_the_types_schema(client, charlie) -> None:
    version = make_version()
    client.force_login(charlie)
    html = client.get(change_url(version)).content.decode()
    select = re.search(r'<select name="tasks-0-params__niah_single__value_type"[^>]*>(.*?)</select>', html, re.S)
    assert re.findall(r'value="([a-z]+)"', select[1]) == ["words", "numbers", "uuids"]
    assert 'name="tasks-0-params__niah_multikey__num_keys"' in html  # another type's group, shown when chosen
    assert 'min="1" max="32"' in html
    data = version_form_data(version, **{"tasks-0-task_type": "niah_multikey"})
    data = {k: v for k, v in data.items() if "__niah_single__" not in k}
    data.update(task_param_inputs(0, "niah_multikey", {"num_keys": 6, "haystack": "needles"}))
    response = client.post(change_url(version), data)
    assert response.status_code == 302
    task = version.tasks.get()
    assert task.task_type == "niah_multikey" and task.params["num_keys"] == 6 and task.params["haystack"] == "needles"


@pytest.mark.parametrize(("task_type", "inputs", "message"), [
    ("niah_single", {"depth_percent": "deep"}, "params.depth_percent: expected a number, got 'deep'"),
    ("niah_single", {"depth_percent": "140"}, "params.depth_percent: must be at most 100, got 140"),
    ("niah_single", {"value_type": "emoji"}, "params.value_type: unknown value type 'emoji'"),
    ("niah_multikey", {"num_keys": "1", "haystack": "prose"},
     "params.num_keys: must be at least 2 unless the haystack is made of needles"),
])
def test_the_task_registrys_refusals_are_shown_on_the_params_field(client, charlie, task_type: str,
                                                                   inputs: dict[str, str], message: str) -> None:
    version = make_version()
    stored = version.tasks.get().params
    client.force_login(charlie)
    data = version_form_data(version, **{"tasks-0-task_type": task_type})
    data.update(task_param_inputs(0, task_type, inputs))
    response = client.post(change_url(version), data)
    assert response.status_code == 200
    assert message in " ".join(row_errors(response)["params"])
    assert version.tasks.get().params == stored


def test_a_published_versions_change_page_has_no_editable_spec_inputs(client, charlie) -> None:
    version = make_version(publish=True, tasks=2)
    client.force_login(charlie)
    html = client.get(change_url(version)).content.decode()
    assert editable_names(html) - {"_save", "_continue", "_addanother"} == {"title", "notes"}
    assert "niah_0" in html and "512, 1024 tokens" in html  # the spec is shown, read-only
    assert 'form="clone-version"' in html and f'/admin/leaderboard/benchmarkversion/{version.pk}/clone/' in html
    assert 'name="tasks-MAX_NUM_FORMS" value="0"' in html and "tasks-0-DELETE" not in html  # no rows added or removed


def test_a_published_versions_page_saves_a_new_title_from_the_inputs_it_renders(client, charlie) -> None:
    version = make_version(publish=True, tasks=2)
    client.force_login(charlie)
    html = client.get(change_url(version)).content.decode()
    main_form = html.split('id="benchmarkversion_form"')[1].split("</form>")[0]
    data = {m[1]: htmllib.unescape(m[2]) for m in re.finditer(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', main_form)}
    data.update(title="Renamed", notes="Why it was renamed.")
    response = client.post(change_url(version), data)
    assert response.status_code == 302, (form_errors(response), row_errors(response), data)
    stored = BenchmarkVersion.objects.get(pk=version.pk)
    assert (stored.title, stored.spec_hash) == ("Renamed", version.spec_hash)


def test_a_draft_has_no_clone_button_and_editable_spec_inputs(client, charlie) -> None:
    version = make_version()
    client.force_login(charlie)
    html = client.get(change_url(version)).content.decode()
    assert {"seed", "lengths", "kv_budgets", "tasks-0-key", "tasks-0-params__niah_single__depth_percent"} \
        <= editable_names(html)
    assert 'form="clone-version"' not in html


def test_the_clone_button_opens_a_new_draft_titled_like_its_source(client, charlie) -> None:
    version = make_version(publish=True, tasks=2, title="Long context v3")
    client.force_login(charlie)
    response = client.post(f"/admin/leaderboard/benchmarkversion/{version.pk}/clone/")
    draft = BenchmarkVersion.objects.get(cloned_from=version)
    assert response.status_code == 302 and response["Location"] == change_url(draft)
    assert draft.title == "Long context v3" and draft.tasks.count() == 2
    assert client.get(f"/admin/leaderboard/benchmarkversion/{version.pk}/clone/").status_code == 302
    assert BenchmarkVersion.objects.filter(cloned_from=version).count() == 1  # a GET clones nothing


def test_a_clone_of_a_draft_titled_clone_loses_the_old_draft_suffix() -> None:
    source = make_version(publish=True, title="Smoke (draft)")
    assert versioning.clone(source).title == "Smoke"


def test_a_cloned_drafts_page_lists_its_differences_task_by_task(client, charlie) -> None:
    source = make_version(publish=True, tasks=2)
    draft = versioning.clone(source)
    draft.lengths = [512, 2048]
    draft.save()
    task = draft.tasks.get(key="niah_1")
    task.params = {**task.params, "depth_percent": 10}
    task.max_new_tokens = 64
    task.full_clean()
    task.save()
    draft.tasks.filter(key="niah_0").delete()
    TaskSpec.objects.create(version=draft, key="vt_new", task_type="variable_tracking", params={})
    client.force_login(charlie)
    html = client.get(change_url(draft)).content.decode()
    assert f"Changes from {source.slug}" in html
    assert "lengths: [512, 1024] -&gt; [512, 2048]" in html
    assert "task changed: niah_1 (max new tokens: 32 -&gt; 64; depth_percent: null -&gt; 10)" in html
    assert "task added: vt_new" in html and "task removed: niah_0" in html


def test_a_draft_is_published_from_its_own_page_and_then_reads_as_frozen(client, charlie) -> None:
    draft = make_version()
    empty = make_version("empty", tasks=0)
    client.force_login(charlie)
    html = client.get(change_url(draft)).content.decode()
    assert 'form="publish-version"' in html
    response = client.post(f"/admin/leaderboard/benchmarkversion/{empty.pk}/publish/", follow=True)
    assert "has no tasks" in response.content.decode()
    response = client.post(f"/admin/leaderboard/benchmarkversion/{draft.pk}/publish/", follow=True)
    assert "Published 1 item" in response.content.decode() and 'form="clone-version"' in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == "published" and draft.spec_hash == versioning.spec_hash(draft)


def test_a_drafts_page_posted_back_as_rendered_changes_nothing(client, charlie) -> None:
    from tests.factories import make_version as mk

    version = mk(kv_methods=["full", "snapkv", "think"], kv_budgets=[1.0, 0.5], kv_method_budgets={"think": [0.7]},
                 params={"query_aware": True, "reasoning": False}, tasks=2, lengths=[2048, 4096])
    vt = TaskSpec(version=version, key="vt", task_type="variable_tracking", params={"num_hops": 3, "template": "ruler"},
                  max_new_tokens=30)
    vt.full_clean()
    vt.save()
    before = versioning.spec_of(version)
    client.force_login(charlie)
    data = rendered_form(client.get(change_url(version)).content.decode())
    response = client.post(change_url(version), data)
    assert response.status_code == 302, (form_errors(response), [row_errors(response, i) for i in range(3)],
                                         response.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert versioning.spec_of(BenchmarkVersion.objects.get(pk=version.pk)) == before
    data["tasks-2-params__variable_tracking__num_hops"] = ["5"]
    assert client.post(change_url(version), data).status_code == 302
    assert version.tasks.get(key="vt").params == {"haystack": "noise", "num_chains": 1, "num_hops": 5,
                                                   "template": "ruler"}
