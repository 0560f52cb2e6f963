"""The submission form: accounts required, help everywhere, refusals a person can act on, quota and duplicates."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leaderboard.forms import SubmissionForm
from leaderboard.models import (
    EventAction,
    ModelKind,
    Submission,
    SubmissionStatus,
    TaskRecord,
)
from tests.factories import make_default_version, make_entry, make_submission, submission_post

pytestmark = pytest.mark.django_db
SUBMIT = "/submit/"


@pytest.fixture
def version():
    return make_default_version("t1", kv_methods=["full", "snapkv", "streaming_llm"], kv_budgets=[1.0, 0.5, 0.25])


@pytest.fixture
def as_alice(client, alice, version):
    client.force_login(alice)
    return client


def post(client, **overrides):
    return client.post(SUBMIT, submission_post(**overrides))


def field_errors(response) -> dict[str, list[str]]:
    form = response.context["form"]
    return {k: [str(m) for m in v] for k, v in form.errors.items()}


# --- accounts and the form itself ----------------------------------------------------------------------

def test_submitting_needs_an_account_but_browsing_does_not(client, version) -> None:
    response = client.get(SUBMIT)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=/submit/")
    assert client.post(SUBMIT, submission_post()).status_code == 302
    assert not Submission.objects.exists()
    assert client.get("/").status_code == 200


def test_every_field_has_help_text_and_a_length_limit_where_it_is_text(version) -> None:
    form = SubmissionForm()
    for name, field in form.fields.items():
        assert field.help_text, f"{name} has no help text"
        if hasattr(field, "max_length") and name not in ("kind", "api_mode", "version"):
            assert field.max_length, f"{name} has no length limit"


def test_the_default_version_is_preselected_and_the_key_field_never_renders_a_value(as_alice, version) -> None:
    page = as_alice.get(SUBMIT).content.decode()
    assert f'<option value="{version.slug}" selected>' in page
    response = post(as_alice, api_key="sk-typed-once-123456", claimed_context="0")  # refused, re-rendered
    page = response.content.decode()
    assert response.status_code == 400
    assert "sk-typed-once-123456" not in page and "type it again" in page


def test_a_valid_endpoint_submission_is_queued_and_its_start_task_sent(as_alice, alice, version,
                                                                       django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post(as_alice, api_key="sk-form-key-0001")
    sub = Submission.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/submissions/{sub.pk}/"
    assert sub.status == SubmissionStatus.QUEUED and sub.submitter == alice and sub.queued_at
    assert sub.get_api_key() == "sk-form-key-0001" and "sk-form-key-0001" not in sub.api_key_encrypted
    entry = sub.model
    assert (entry.kind, entry.endpoint_url, entry.api_model_name, entry.claimed_context) == (
        ModelKind.ENDPOINT, "http://127.0.0.1:9/v1", "llama-test", 131072)
    assert entry.created_by == alice and float(entry.parameters_b) == 8.0
    assert sub.events.get().action == EventAction.SUBMITTED
    record = TaskRecord.objects.get(task_name="evalworkers.tasks.start_submission")
    assert record.args == [sub.pk]


def test_with_approval_required_a_submission_waits_for_review_and_sends_nothing(as_alice, settings,
                                                                               django_capture_on_commit_callbacks):
    settings.REQUIRE_APPROVAL = True
    with django_capture_on_commit_callbacks(execute=True):
        post(as_alice)
    assert Submission.objects.get().status == SubmissionStatus.PENDING_REVIEW
    assert not TaskRecord.objects.exists()


def local_post(**overrides):
    fields = {"kind": "huggingface", "endpoint_url": "", "api_model_name": "", "hf_repo": "HuggingFaceTB/SmolLM2",
              "hf_revision": "main"}
    return submission_post(**{**fields, **overrides})


def test_a_local_model_from_a_user_waits_for_review_with_its_kv_choices(as_alice, version) -> None:
    response = as_alice.post(SUBMIT, {**local_post(), "kv_methods": ["snapkv"], "kv_budgets": ["0.5", "0.25"]})
    assert response.status_code == 302, field_errors(response)
    sub = Submission.objects.get()
    assert sub.status == SubmissionStatus.PENDING_REVIEW
    assert sub.kv_methods == ["snapkv"] and sorted(sub.kv_budgets) == [0.25, 0.5]
    assert sub.model.kind == ModelKind.HUGGINGFACE and sub.model.hf_repo == "HuggingFaceTB/SmolLM2"
    assert sub.model.endpoint_url == "" and not sub.has_api_key


def test_a_local_model_from_staff_is_queued_at_once(client, charlie, version) -> None:
    client.force_login(charlie)
    assert client.post(SUBMIT, local_post()).status_code == 302
    assert Submission.objects.get().status == SubmissionStatus.QUEUED


def test_local_models_can_skip_review_when_the_deployment_says_so(as_alice, settings) -> None:
    settings.LOCAL_MODELS_REQUIRE_APPROVAL = False
    as_alice.post(SUBMIT, local_post())
    assert Submission.objects.get().status == SubmissionStatus.QUEUED


def test_kv_methods_and_budgets_must_be_offered_by_the_chosen_version(as_alice, version) -> None:
    other = make_default_version("t2", kv_methods=["full", "tova"], kv_budgets=[1.0, 0.1])
    response = as_alice.post(SUBMIT, {**local_post(version=version.slug), "kv_methods": ["tova"],
                                      "kv_budgets": ["0.1"]})
    errors = field_errors(response)
    assert "does not offer tova" in errors["kv_methods"][0] and "offers budgets 0.25, 0.5" in errors["kv_budgets"][0]
    ok = as_alice.post(SUBMIT, {**local_post(version=other.slug), "kv_methods": ["tova"], "kv_budgets": ["0.1"]})
    assert ok.status_code == 302


def test_a_method_the_workers_cannot_run_at_a_budget_or_without_its_files_is_refused(as_alice) -> None:
    other = make_default_version("t3", kv_methods=["full", "snapkv", "think", "duo_attention"],
                                 kv_budgets=[1.0, 0.5, 0.25], kv_method_budgets={"think": [0.8, 0.7]})
    errors = field_errors(as_alice.post(SUBMIT, {**local_post(version=other.slug), "kv_methods": ["think"],
                                                 "kv_budgets": ["0.25"]}))
    assert errors == {"kv_budgets": ["budget 0.25 is not offered for think (offered: think at 0.8, 0.7)."]}
    ok = as_alice.post(SUBMIT, {**local_post(version=other.slug), "kv_methods": ["snapkv", "think"],
                                "kv_budgets": ["0.25", "0.8"]})
    assert ok.status_code == 302  # snapkv at 0.25 and think at 0.8: each method at the budgets it is offered
    page = as_alice.get(SUBMIT).content.decode()
    assert "ThinK, 40% of key channels pruned, 80% of KV bytes, logically" in page
    errors = field_errors(as_alice.post(SUBMIT, {**local_post(version=other.slug), "kv_methods": ["duo_attention"],
                                                 "kv_budgets": ["0.5"]}))
    assert "duo_attention needs files" in errors["kv_methods"][0] and "KV_FILES_DIR" in errors["kv_methods"][0]


def test_chosen_methods_need_a_budget_and_budgets_need_a_method(as_alice) -> None:
    errors = field_errors(as_alice.post(SUBMIT, {**local_post(), "kv_methods": ["snapkv"]}))
    assert errors == {"kv_budgets": ["Choose at least one budget for the chosen methods."]}
    errors = field_errors(as_alice.post(SUBMIT, {**local_post(), "kv_budgets": ["0.5"]}))
    assert errors == {"kv_methods": ["Choose at least one method to run at the chosen budgets."]}


@pytest.mark.parametrize("repo", ["/etc/passwd", "../secrets", "owner/../../x", "just-a-name", "a/b/c",
                                  "https://huggingface.co/x/y", "owner/name.", "own er/name", "~/models/x"])
def test_a_local_model_must_be_an_owner_slash_name_repository_not_a_path(as_alice, repo: str) -> None:
    errors = field_errors(as_alice.post(SUBMIT, local_post(hf_repo=repo)))
    assert list(errors) == ["hf_repo"] and "owner/name" in errors["hf_repo"][0]


@pytest.mark.parametrize(("kind", "missing", "field"), [
    ("endpoint", {"endpoint_url": ""}, "endpoint_url"), ("endpoint", {"api_model_name": ""}, "api_model_name"),
    ("huggingface", {"hf_repo": ""}, "hf_repo"),
])
def test_the_fields_a_kind_needs_are_required_for_it(as_alice, kind, missing, field) -> None:
    data = submission_post(**missing) if kind == "endpoint" else {**local_post(), **missing}
    errors = field_errors(as_alice.post(SUBMIT, data))
    assert list(errors) == [field] and "is needed" in errors[field][0]


# --- the endpoint URL: scheme, shape and addresses ----------------------------------------------------------

ISSUE_SSRF_LIST = [
    "http://127.0.0.1", "http://localhost", "http://[::1]", "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1", "http://0x7f000001", "http://2130706433", "http://[::ffff:127.0.0.1]",
]


@pytest.mark.parametrize("url", ISSUE_SSRF_LIST)
def test_the_form_refuses_private_and_metadata_endpoints_with_a_clear_message(as_alice, settings, url) -> None:
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    response = post(as_alice, endpoint_url=url)
    assert response.status_code == 400
    errors = field_errors(response)
    assert list(errors) == ["endpoint_url"]
    assert "only contacts public internet addresses" in errors["endpoint_url"][0]
    assert "Endpoint base URL" in response.content.decode()  # the summary names the field
    assert not Submission.objects.exists()


def test_the_form_refuses_a_name_that_resolves_to_a_private_address(as_alice, settings, monkeypatch) -> None:
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):  # the one stand-in for DNS, which is unreachable here
        if host == "models.example.org":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.7.7", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    errors = field_errors(post(as_alice, endpoint_url="https://models.example.org/v1"))
    assert "models.example.org resolves to 192.168.7.7, a private network address" in errors["endpoint_url"][0]


def test_a_public_endpoint_passes_when_private_ones_are_refused(as_alice, settings) -> None:
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    assert post(as_alice, endpoint_url="https://93.184.216.34/v1").status_code == 302


def test_the_demo_deployment_accepts_a_local_endpoint(as_alice, settings) -> None:
    settings.ALLOW_PRIVATE_ENDPOINTS = True
    assert post(as_alice, endpoint_url="http://model-server:8000/v1").status_code == 302


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://example.org/v1", "http:// or https://"), ("file:///etc/passwd", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"), ("example.org/v1", "http:// or https://"),
    ("https://user:pw@example.org/v1", "API key in its own field"), ("https://example.org/v1?x=1", "?query"),
    ("https://exa mple.org/v1", "spaces"), ("https://bad_host!/v1", "not a valid host name"),
    ("https://example.org:99999/v1", "port"),
])
def test_a_malformed_endpoint_url_is_refused_naming_what_is_wrong(as_alice, url, words) -> None:
    errors = field_errors(post(as_alice, endpoint_url=url))
    assert list(errors) == ["endpoint_url"] and words in errors["endpoint_url"][0], errors


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", "100000001", ""])
def test_the_claimed_context_must_be_a_positive_whole_number(as_alice, value) -> None:
    errors = field_errors(post(as_alice, claimed_context=value))
    assert list(errors) == ["claimed_context"]


@pytest.mark.parametrize(("field", "limit"), [
    ("display_name", 120), ("organisation", 120), ("endpoint_url", 500), ("api_model_name", 200),
    ("api_key", 500), ("tokenizer_hint", 200), ("model_card_url", 500), ("paper_url", 500),
])
def test_every_text_field_has_a_length_limit(as_alice, field, limit) -> None:
    value = "https://example.org/" + "a" * limit if "url" in field else "a" * (limit + 1)
    errors = field_errors(post(as_alice, **{field: value}))
    assert field in errors and f"at most {limit} characters" in errors[field][0]


def test_an_api_key_with_odd_characters_is_refused_without_echoing_it(as_alice) -> None:
    response = post(as_alice, api_key="sk-has space-and-ü")
    assert "visible ASCII" in field_errors(response)["api_key"][0]
    assert "has space" not in response.content.decode()


# --- duplicates and quota --------------------------------------------------------------------------------

def test_a_duplicate_of_an_active_submission_is_refused_with_a_link_to_it(as_alice, bob, version) -> None:
    existing = make_submission(version=version, submitter=bob,
                               model=make_entry(endpoint_url="http://127.0.0.1:9/v1", api_model_name="llama-test"))
    response = post(as_alice, endpoint_url="HTTP://127.0.0.1:9/")  # the same endpoint, spelled differently
    assert response.status_code == 400
    assert f"submission #{existing.pk}" in field_errors(response)["endpoint_url"][0]
    assert f'href="/submissions/{existing.pk}/"' in response.content.decode()
    assert Submission.objects.count() == 1


@pytest.mark.parametrize("status", [SubmissionStatus.FAILED, SubmissionStatus.CANCELLED, SubmissionStatus.REJECTED])
def test_an_ended_unsuccessful_submission_is_no_duplicate(as_alice, version, status) -> None:
    make_submission(version=version, status=status,
                    model=make_entry(endpoint_url="http://127.0.0.1:9/v1", api_model_name="llama-test"))
    assert post(as_alice).status_code == 302


def test_a_completed_submission_is_a_duplicate_but_another_api_mode_or_model_is_not(as_alice, version) -> None:
    make_submission(version=version, status=SubmissionStatus.COMPLETED,
                    model=make_entry(endpoint_url="http://127.0.0.1:9/v1", api_model_name="llama-test"))
    assert post(as_alice).status_code == 400
    assert post(as_alice, api_mode="completions").status_code == 302
    assert post(as_alice, api_model_name="llama-test-2").status_code == 302


def test_the_quota_refuses_the_sixth_submission_in_a_week_with_the_date_of_the_next(as_alice, alice) -> None:
    for i in range(5):
        assert post(as_alice, api_model_name=f"m{i}").status_code == 302
    first = Submission.objects.order_by("created_at").first()
    response = post(as_alice, api_model_name="m5")
    assert response.status_code == 400
    expected = (first.created_at + timedelta(days=7)).strftime("%Y-%m-%d %H:%M UTC")
    message = response.context["form"].non_field_errors()[0]
    assert "quota of 5 submissions per 7 days" in message and expected in message
    assert Submission.objects.count() == 5


def test_failed_and_cancelled_submissions_do_not_count_and_old_ones_expire(as_alice, alice, settings) -> None:
    settings.SUBMISSION_QUOTA = 2
    for i in range(2):
        post(as_alice, api_model_name=f"m{i}")
    subs = list(Submission.objects.order_by("pk"))
    assert post(as_alice, api_model_name="m2").status_code == 400
    Submission.objects.filter(pk=subs[0].pk).update(status=SubmissionStatus.FAILED)
    assert post(as_alice, api_model_name="m3").status_code == 302
    Submission.objects.filter(pk=subs[1].pk).update(status=SubmissionStatus.CANCELLED)
    assert post(as_alice, api_model_name="m4").status_code == 302
    Submission.objects.filter(submitter=alice).update(created_at=timezone.now() - timedelta(days=8))
    assert post(as_alice, api_model_name="m5").status_code == 302


def test_staff_have_no_quota(client, charlie, settings, version) -> None:
    settings.SUBMISSION_QUOTA = 1
    client.force_login(charlie)
    for i in range(3):
        assert post(client, api_model_name=f"m{i}").status_code == 302


def test_the_form_page_says_how_many_submissions_are_left(as_alice, settings) -> None:
    settings.SUBMISSION_QUOTA = 3
    post(as_alice)
    assert "You can submit 2 more" in as_alice.get(SUBMIT).content.decode()


# --- property-based fuzzing: no input makes a server error; every refusal names its field -------------

FIELDS = [*submission_post(), "kv_methods", "kv_budgets"]
nasty_text = st.one_of(
    st.text(max_size=40), st.text(max_size=600), st.just(""), st.just("\x00"), st.just("0"), st.just("-1"),
    st.just("1e309"), st.just("NaN"), st.just("http://[::1"), st.just("http://%00/"), st.just("https://ex.org/v1"),
    st.just("http://[::ffff:127.0.0.1]/"), st.just("HuggingFaceTB/SmolLM2"), st.just("snapkv"), st.just("0.5"),
    st.sampled_from(["endpoint", "huggingface", "reported", "chat", "completions", "t1", "nope"]),
    st.integers(min_value=-10**20, max_value=10**20).map(str),
)


@pytest.mark.slow  # 150 generated forms
@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(st.sampled_from(FIELDS), nasty_text, max_size=len(FIELDS)),
       base=st.booleans())
def test_no_input_makes_a_server_error_and_every_refusal_names_its_field(as_alice, settings, data, base) -> None:
    settings.SUBMISSION_QUOTA = 10**6
    settings.SUBMIT_RATE = None  # 150 posts from one address: the rate limit has its own tests
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    payload = {**(submission_post(endpoint_url="https://93.184.216.34/v1") if base else {}), **data}
    response = as_alice.post(SUBMIT, payload)
    assert response.status_code in (302, 400)
    if response.status_code == 400:
        form = response.context["form"]
        assert form.errors
        page = response.content.decode()
        for name in form.errors:
            if name == "__all__":  # only the quota and duplicate rules speak for the whole form
                assert any(w in form.errors[name][0] for w in ("quota", "already"))
                continue
            assert name in form.fields
            assert f'href="#{form[name].id_for_label}"' in page  # the summary names and links the field
