"""The submission form and the sign-up form. Every refusal is attached to the field it is about.

The endpoint URL is checked with the same pure address rules the workers apply again when they connect
(evalworkers/backends/addresses.py); quota and duplicates are checked by leaderboard/submitting.py.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.core.validators import URLValidator

from evalworkers.backends import EndpointConfig
from evalworkers.backends.addresses import UnsafeAddressError, check_url, ip_literal, parse_networks
from evalworkers.backends.options import ALLOWED, OptionsError, validate_request_options
from evalworkers.kv import budgets as kv_budgets
from evalworkers.kv import registry as kv_registry
from leaderboard.models import ApiMode, BenchmarkVersion, ModelKind, VerifiedAddress
from leaderboard.submission_kinds import DEFAULT_REVISION, RULES
from leaderboard.submitting import SubmissionRequest
from leaderboard.verification import canonical_address

MAX_CONTEXT = 100_000_000  # tokens; anything above is a typo, not a claim
HF_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
HF_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,99}$")
HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*\.?$")
API_KEY_RE = re.compile(r"^[\x21-\x7e]+$")
SUBMITTABLE_KINDS = [(kind, rules.label) for kind, rules in RULES.items()]


class SignupForm(UserCreationForm):
    """Django's own user creation (password rules included) plus the e-mail address a submitter confirms."""

    email = forms.EmailField(
        max_length=254, help_text="We send a link to confirm it before your first submission; also used for "
                                  "password resets. Nothing else.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        taken = VerifiedAddress.objects.filter(canonical=canonical_address(email)).exists()
        if taken or get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this e-mail address exists; log in or reset its password.")
        return email


def _version_choices() -> Any:
    return BenchmarkVersion.objects.submittable().order_by("-is_default", "slug")


def _budget_label(b: float) -> str:
    return "100% (full cache)" if b >= 1 else f"{kv_budgets.percent(b)} of the KV cache"


class SubmissionForm(forms.Form):
    kind = forms.ChoiceField(
        label="What to evaluate", choices=SUBMITTABLE_KINDS, initial=ModelKind.ENDPOINT, widget=forms.RadioSelect,
        help_text="An endpoint is called over HTTP from our workers; a Hugging Face model is downloaded and run on "
                  "our GPUs, where KV-cache compression methods can be applied.")
    display_name = forms.CharField(
        label="Model name", max_length=120,
        help_text="How the model appears on the leaderboard, e.g. \"Llama-3.1-8B-Instruct\".")
    organisation = forms.CharField(
        max_length=120, required=False, help_text="Who made or serves the model (optional).")
    version = forms.ModelChoiceField(
        label="Benchmark version", queryset=BenchmarkVersion.objects.none(), to_field_name="slug",
        empty_label=None,
        help_text="The set of tasks and lengths to run; the default version is preselected. Each version's "
                  "lengths are listed on the Benchmark versions page.")
    claimed_context = forms.IntegerField(
        label="Claimed context length (tokens)", min_value=1, max_value=MAX_CONTEXT,
        help_text="The context window the model is advertised with, e.g. 131072. We report the effective "
                  "length we measure next to it.")
    parameters_b = forms.DecimalField(
        label="Parameters (billions)", required=False, min_value=Decimal("0.01"), max_value=Decimal("100000"),
        max_digits=8, decimal_places=2,
        help_text="Total parameter count in billions, to two decimals, e.g. 8 or 0.14 (optional).")
    model_card_url = forms.URLField(
        label="Model card link", max_length=500, required=False, assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="A page describing the model (optional). Shown as a link; never fetched.")
    paper_url = forms.URLField(
        label="Paper link", max_length=500, required=False, assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="A paper or report about the model (optional). Shown as a link; never fetched.")

    # --- endpoint --------------------------------------------------------------------------------------
    endpoint_url = forms.CharField(
        label="Endpoint base URL", max_length=500, required=False,
        help_text="The OpenAI-compatible API root, e.g. https://api.example.org/v1, over http or https.")
    api_mode = forms.ChoiceField(
        label="API mode", choices=ApiMode.choices, initial=ApiMode.CHAT, widget=forms.RadioSelect,
        help_text="Chat completions (/v1/chat/completions, the model's chat template applies) or plain "
                  "completions (/v1/completions).")
    api_model_name = forms.CharField(
        label="Served model name", max_length=200, required=False,
        help_text="The \"model\" value the endpoint expects, as listed by its /v1/models.")
    api_key = forms.CharField(
        label="API key", max_length=500, required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Only if the endpoint needs one (sent as a Bearer token). Stored encrypted, never shown again, "
                  "and erased when the evaluation ends. Use a key limited to this model.")
    tokenizer_hint = forms.CharField(
        label="Tokenizer hint", max_length=200, required=False,
        help_text="The Hugging Face tokenizer the model uses, e.g. meta-llama/Llama-3.1-8B (optional; helps "
                  "us check prompt lengths).")
    request_options = forms.CharField(
        label="Request options (JSON)", max_length=2048, required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": '{"chat_template_kwargs": {"enable_thinking": false}}'}),
        help_text="Extra fields sent with every request, shown with the results because they change what a score "
                  f"means (optional). Allowed: {', '.join(ALLOWED)}; e.g. turn a reasoning model's thinking off. "
                  "Decoding stays greedy and the token limits stay the benchmark's.")

    # --- local (Hugging Face) model ----------------------------------------------------------------------
    hf_repo = forms.CharField(
        label="Hugging Face repository", max_length=200, required=False,
        help_text="owner/name of a public model repository, e.g. HuggingFaceTB/SmolLM2-135M-Instruct.")
    hf_revision = forms.CharField(
        label="Revision", max_length=100, required=False,
        help_text=f"A branch, tag or commit of that repository (default: {DEFAULT_REVISION}). A commit hash "
                  "makes the result reproducible.")
    kv_methods = forms.MultipleChoiceField(
        label="KV-cache methods", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Compression methods to measure besides the full cache; the choice depends on the benchmark "
                  "version (its page lists them).")
    kv_budgets = forms.MultipleChoiceField(
        label="KV budgets", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Fractions of the KV cache each method may keep; every chosen method runs at every chosen "
                  "budget.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["endpoint_url"].help_text += (
            " This deployment also reaches private and loopback addresses (ALLOW_PRIVATE_ENDPOINTS)."
            if settings.ALLOW_PRIVATE_ENDPOINTS else " It must be reachable from the public internet.")
        versions = list(_version_choices())
        self.fields["version"].queryset = _version_choices()
        default = next((v for v in versions if v.is_default), versions[0] if versions else None)
        if default is not None:
            self.fields["version"].initial = default.slug
        offers = [v.kv_offered() for v in versions]
        methods = sorted({m for offer in offers for m in offer})
        budgets = sorted({b for offer in offers for bs in offer.values() for b in bs}, reverse=True)
        self.fields["kv_methods"].choices = [(m, f"{m} ({kv_registry.METHODS[m].label})") for m in methods]
        self.fields["kv_budgets"].choices = [(f"{b:g}", _budget_label(b)) for b in budgets]
        self.versions = versions

    # --- field checks (each names its own field) ----------------------------------------------------------

    def clean_display_name(self) -> str:
        name = self.cleaned_data["display_name"]
        if not name or not any(ch.isalnum() for ch in name):
            raise forms.ValidationError("Give the model a name with at least one letter or digit.")
        return name

    def clean_endpoint_url(self) -> str:
        url = self.cleaned_data.get("endpoint_url", "")
        if not url:
            return url
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            raise forms.ValidationError("The URL must not contain spaces or control characters.")
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            raise forms.ValidationError("This is not a valid URL; it should look like https://host/v1.") from None
        if parts.query or parts.fragment:
            raise forms.ValidationError("Remove the ?query or #fragment; give the API root, e.g. https://host/v1.")
        try:
            literal = ip_literal(host) if host else None
            if host and literal is None and not HOST_RE.match(host.encode("idna").decode("ascii")):
                raise forms.ValidationError(f"{host} is not a valid host name.")
            check_url(url, allow_private=settings.ALLOW_PRIVATE_ENDPOINTS,
                      allowed_networks=parse_networks(settings.ENDPOINT_ALLOWED_NETWORKS))
        except UnsafeAddressError as exc:
            raise forms.ValidationError(str(exc)) from None
        except UnicodeError:
            raise forms.ValidationError(f"{host} is not a valid host name.") from None
        except ValueError as exc:
            raise forms.ValidationError(str(exc) or "This is not a valid URL.") from None
        return url

    def clean_api_model_name(self) -> str:
        name = self.cleaned_data.get("api_model_name", "")
        if name and not name.isprintable():
            raise forms.ValidationError("The served model name must not contain control characters.")
        return name

    def clean_api_key(self) -> str:
        key = self.cleaned_data.get("api_key", "")
        if key and not API_KEY_RE.match(key):
            # Never quote the key back, not even in part.
            raise forms.ValidationError("The API key may only contain visible ASCII characters, without spaces.")
        return key

    def clean_request_options(self) -> dict[str, Any]:
        raw = self.cleaned_data.get("request_options", "").strip()
        if not raw:
            return {}
        try:
            decoded = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON ({exc.msg} at character {exc.pos}).") from None
        try:
            return validate_request_options(decoded)
        except OptionsError as exc:
            raise forms.ValidationError(exc.problems) from None

    def clean_hf_repo(self) -> str:
        repo = self.cleaned_data.get("hf_repo", "")
        if repo and (not HF_REPO_RE.match(repo) or ".." in repo or repo.endswith((".", "-"))):
            raise forms.ValidationError(
                "Give the repository as owner/name, e.g. HuggingFaceTB/SmolLM2-135M-Instruct (letters, digits, "
                "- _ . only).")
        return repo

    def clean_hf_revision(self) -> str:
        rev = self.cleaned_data.get("hf_revision", "")
        if rev and (not HF_REVISION_RE.match(rev) or ".." in rev):
            raise forms.ValidationError("Give a branch, tag or commit hash, e.g. main or 7f3c2a1.")
        return rev

    # --- checks across fields --------------------------------------------------------------------------

    def clean(self) -> dict[str, Any]:
        """The chosen kind's required fields and its own check (``submission_kinds.RULES``)."""
        data = super().clean()
        rules = RULES.get(data.get("kind") or "")
        if rules is not None:
            self._require(data, rules.required_fields, rules.requirement)
            getattr(self, rules.form_check)(data)
        return data

    def _check_endpoint(self, data: dict[str, Any]) -> None:
        """The URL, model and key make an endpoint the workers may contact (the address rules included)."""
        url, name = data.get("endpoint_url"), data.get("api_model_name")
        if url and name and "api_mode" in data and "api_key" in data:
            try:
                EndpointConfig(base_url=url, model=name, api_mode=data["api_mode"], api_key=data["api_key"] or None)
            except ValueError as exc:
                message = str(exc)
                self.add_error("endpoint_url", message[:1].upper() + message[1:] + ".")

    def _require(self, data: dict[str, Any], names: tuple[str, ...], why: str) -> None:
        for name in names:
            if name not in self.errors and not data.get(name):
                self.add_error(name, f"{self.fields[name].label} {why}.")

    def _check_kv(self, data: dict[str, Any]) -> None:
        """Each chosen method runs at each chosen budget its version offers it at; a method or budget the version
        does not offer, a method left without a budget, or a pair the workers cannot run is refused."""
        version = data.get("version")
        methods, budgets = data.get("kv_methods") or [], [float(b) for b in data.get("kv_budgets") or []]
        if version is None:
            return
        if methods and not budgets:
            self.add_error("kv_budgets", "Choose at least one budget for the chosen methods.")
            return
        if budgets and not methods:
            self.add_error("kv_methods", "Choose at least one method to run at the chosen budgets.")
            return
        offered, refused = version.kv_offered(), version.kv_refused()
        extra = [m for m in methods if m not in offered]
        if extra:
            self.add_error("kv_methods", f"Version {version.slug} does not offer {', '.join(extra)}; it offers "
                                         f"{', '.join(offered) or 'only the full cache'}.")
        every = {b for bs in offered.values() for b in bs} | {b for m, b, _ in refused if m in methods}
        odd = [b for b in budgets if b not in every]
        if odd:
            self.add_error("kv_budgets", f"Version {version.slug} offers budgets "
                                         f"{', '.join(f'{b:g}' for b in sorted(every)) or 'none'}.")
        if extra or odd:
            return
        try:
            points = kv_registry.requested_points(methods, budgets, offered, refused)
        except kv_registry.MethodError as exc:
            field = "kv_methods" if any(str(exc) == why for _, _, why in refused) else "kv_budgets"
            self.add_error(field, f"{exc}.")
            return
        self._check_runnable(points, data.get("hf_repo") or "", min(version.lengths))

    def _check_runnable(self, points: list[tuple[str, float]], repo: str, shortest: int) -> None:
        """Pairs the workers cannot run (a budget the method cannot honour, a method whose files are missing)."""
        problem = kv_registry.unrunnable(points, files_dir=settings.KV_FILES_DIR, model_name=repo,
                                         context_tokens=shortest)
        if problem is not None:
            method, why = problem
            self.add_error("kv_methods", f"{method}: {why}.")

    def to_request(self) -> SubmissionRequest:
        """Everything typed; what the chosen kind keeps is decided once, by its rules (``submitting.create``)."""
        d = self.cleaned_data
        return SubmissionRequest(
            kind=d["kind"], display_name=d["display_name"], organisation=d.get("organisation", ""),
            version=d["version"], claimed_context=d["claimed_context"], parameters_b=d.get("parameters_b"),
            model_card_url=d.get("model_card_url", ""), paper_url=d.get("paper_url", ""),
            endpoint_url=d.get("endpoint_url") or "", api_mode=d["api_mode"],
            api_model_name=d.get("api_model_name") or "", api_key=d.get("api_key") or "",
            tokenizer_hint=d.get("tokenizer_hint", ""), hf_repo=d.get("hf_repo") or "",
            hf_revision=d.get("hf_revision") or "", kv_methods=tuple(d.get("kv_methods") or ()),
            kv_budgets=tuple(float(b) for b in d.get("kv_budgets") or ()),
            request_options=d.get("request_options") or {},
        )
