"""A KV budget means what it says for every method: one mapping per method to its own knob, the budgets it can
honour (refused everywhere else: registry, version checks, form, pre-flight, evaluate), measured kept fractions on
the tiny model, and one label per point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evalworkers.backends.base import GenerationRequest
from evalworkers.backends.local import LocalModelConfig, load, render
from evalworkers.kv import registry
from evalworkers.kv.generation import generate

CONTEXT = " ".join(f"Line {i}: the river keeps {i * 7 % 13} stones and {i % 5} reeds." for i in range(60))
COMPRESSING = [name for name in registry.METHODS if name != "full"]
# Every point a version may offer: each method's own budgets.
POINTS = [(name, budget) for name in COMPRESSING for budget in registry.METHODS[name].budgets.points]
# What "all of it" is for each kind of knob: the value at which nothing of what the method prunes is left.
REMOVES_ALL = {
    "compression_ratio": lambda v: v >= 1.0,
    "key_channel_compression_ratio": lambda v: v >= 1.0,
    "head_compression_ratio": lambda v: v >= 1.0,
    "nbits": lambda v: v < 2,
}


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path):
    return load(LocalModelConfig(source=str(tiny_llama)))


@pytest.fixture(scope="module")
def kv_files(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files DuoAttention and Q-Filters read, made for the tiny model in the formats their loaders take: a
    head-score table with sink and recent sizes, and a QFilters checkpoint (random, like the model itself)."""
    from kvpress.presses.qfilter_press import QFilters

    root = tmp_path_factory.mktemp("kv-files")
    duo = root / "duo_attention" / tiny_llama.name
    duo.mkdir(parents=True)
    (duo / "config.json").write_text(json.dumps({"sink_size": 4, "recent_size": 16}))
    np.savetxt(duo / "full_attention_heads.tsv", np.array([[0.9, 0.1], [0.5, 0.3]]), delimiter="\t")
    QFilters(num_layers=2, num_kv_heads=2, kv_head_dim=32).save_pretrained(root / "q_filters" / tiny_llama.name)
    return root


def prompt(tiny) -> tuple[torch.Tensor, torch.Tensor]:
    req = GenerationRequest(messages=[{"role": "user", "content": f"Read this.\n{CONTEXT}\nQuestion: Which line?"}],
                            max_new_tokens=8, compress_until=len(f"Read this.\n{CONTEXT}"))
    prefix, suffix = render(tiny.tokenizer, req)

    def ids(text: str) -> torch.Tensor:
        return tiny.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids

    return ids(prefix), ids(suffix)


# --- the table ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMPRESSING)
def test_every_method_states_its_knob_its_valid_budgets_why_and_a_source(name: str) -> None:
    m = registry.METHODS[name]
    assert m.knob.parameter in REMOVES_ALL
    assert m.budgets.why and m.budgets.source and m.budgets.points
    assert m.budgets.interval().endswith("1]") or m.budgets.interval().endswith("1}")
    for budget in m.budgets.points:
        registry.check_budget(name, budget)  # a method's own points are budgets it honours


@pytest.mark.parametrize("name", COMPRESSING)
def test_no_budget_the_registry_accepts_removes_all_of_anything(name: str) -> None:
    m = registry.METHODS[name]
    accepted = []
    for budget in [i / 1000 for i in range(1, 1001)] + list(m.budgets.points):
        try:
            registry.check_budget(name, budget)
        except registry.MethodError:
            continue
        accepted.append(budget)
        assert not REMOVES_ALL[m.knob.parameter](m.knob.value(budget)), (name, budget, m.knob.value(budget))
    assert accepted and 1.0 in accepted


@pytest.mark.parametrize(("budget", "pruned"), [(0.8, "40%"), (0.75, "50%"), (0.7, "60%")])
def test_think_prunes_twice_the_budget_it_gives_up_in_key_channels(budget: float, pruned: str) -> None:
    assert registry.setting("think", budget) == f"{pruned} of key channels pruned"
    assert registry.METHODS["think"].knob.value(budget) == pytest.approx(2 * (1 - budget))


@pytest.mark.parametrize(("name", "budget", "words"), [
    ("think", 0.5, "think cannot run at budget 0.5 (100% of key channels pruned): budget b prunes 2(1 - b)"),
    ("think", 0.25, "It honours budgets in (0.5, 1]; versions offer it at 0.8, 0.75, 0.7"),
    ("kv_quant", 0.5, "kv_quant cannot run at budget 0.5 (int8 keys and values)"),
    ("kv_quant", 0.1, "It honours budgets in {0.125, 0.25, 1}"),
    ("snapkv", 0.0, "budget 0.0 is not a fraction in (0, 1]"),
    ("full", 0.5, "the full cache has budget 1.0 only"),
])
def test_a_budget_a_method_cannot_honour_is_refused_with_the_reason(name: str, budget: float, words: str) -> None:
    with pytest.raises(registry.MethodError) as refused:
        registry.plan(name, budget)
    assert words in str(refused.value)


@pytest.mark.parametrize(("name", "budget", "tokens", "needs"), [
    ("chunkkv", 0.03, 512, "keeps 15 of a 512-token context: it keeps whole 20-token chunks"),
    ("streaming_llm", 0.005, 512, "keeps 2 of a 512-token context: it keeps the 4 sink tokens first"),
])
def test_a_budget_that_keeps_less_than_a_chunk_or_the_sinks_of_the_shortest_context_is_refused(
        name: str, budget: float, tokens: int, needs: str) -> None:
    registry.check_budget(name, budget)  # fine in itself...
    with pytest.raises(registry.MethodError, match=needs):
        registry.check_budget(name, budget, context_tokens=tokens)  # ...but not for this context
    registry.check_budget(name, budget, context_tokens=tokens * 8)


# --- measured on the tiny model -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "budget"), POINTS)
def test_at_each_offered_budget_the_measured_kept_fraction_is_the_budget_or_recorded_as_logical(
        tiny, tiny_llama: Path, kv_files: Path, name: str, budget: float) -> None:
    prefix, suffix = prompt(tiny)
    plan = registry.plan(name, budget, files_dir=kv_files, model_name=str(tiny_llama))
    _, gen = generate(tiny.model, prefix, suffix, plan, max_new_tokens=2, eos_ids=tiny.eos_ids)
    eff = gen.efficiency
    per_token = eff.kv_bytes_full / gen.compressed_tokens
    if name == "kv_quant":  # packed integers plus per-group scales and shifts: a little above bits / 16
        assert eff.physical and budget < eff.kept_fraction < budget * 1.35
    elif name == "chunkkv":  # whole 20-token chunks, the last one partial: within two chunks of the budget
        assert eff.physical and abs(eff.kv_bytes - budget * eff.kv_bytes_full) <= 40 * per_token
    elif name == "duo_attention":  # whole heads streaming, each keeping its 4 + 16 window: measured, logical
        windows = (1 - budget) * 20 / gen.compressed_tokens
        assert not eff.physical and eff.kv_bytes == eff.kv_bytes_full
        assert eff.kept_fraction == pytest.approx(budget + windows, abs=1e-3)
    elif name == "think":  # zeroed key channels read off the cache: within one channel of 32 (half the bytes)
        assert not eff.physical and eff.kv_bytes == eff.kv_bytes_full
        assert budget <= eff.kept_fraction <= budget + 1 / 64 + 1e-9
    elif not registry.METHODS[name].physical:
        assert eff.kv_bytes == eff.kv_bytes_full and eff.kept_fraction == pytest.approx(budget)
    else:  # kvpress keeps int(n * budget) tokens per head
        assert eff.physical and abs(eff.kv_bytes - budget * eff.kv_bytes_full) <= max(per_token, 0.02 * budget *
                                                                                         eff.kv_bytes_full)
    assert eff.kept_fraction > 0


def test_think_zeroes_the_key_channels_its_setting_says_and_no_more(tiny) -> None:
    from transformers import DynamicCache

    prefix, _ = prompt(tiny)
    cache = DynamicCache()
    with torch.inference_mode(), registry.plan("think", 0.7).press(tiny.model):
        tiny.model(input_ids=prefix, past_key_values=cache, use_cache=True)
    for layer in cache.layers:
        zeroed = (layer.keys == 0).all(dim=2).sum(dim=-1)  # per head: channels zero at every position
        assert zeroed.tolist() == [[int(32 * 0.6)] * 2]  # 60% of 32 channels, rounded down, in each head


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_budget_one_of_every_method_generates_exactly_what_the_plain_model_does(tiny, name: str) -> None:
    prefix, suffix = prompt(tiny)
    whole = torch.cat([prefix, suffix], dim=1)
    expected = tiny.model.generate(whole, attention_mask=torch.ones_like(whole), max_new_tokens=8, do_sample=False,
                                   eos_token_id=tiny.eos_ids, pad_token_id=tiny.eos_ids[0])
    tokens, gen = generate(tiny.model, prefix, suffix, registry.plan(name, 1.0), max_new_tokens=8,
                           eos_ids=tiny.eos_ids)
    assert tokens == expected[0, whole.shape[1]:].tolist()
    eff = gen.efficiency
    assert eff.kv_bytes == eff.kv_bytes_full and eff.kept_fraction == 1.0


# --- one label per point --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "budget", "label"), [
    ("think", 0.8, "ThinK, 40% of key channels pruned, 80% of KV bytes, logically"),
    ("snapkv", 0.25, "SnapKV, 75% of tokens evicted, 25% of KV bytes"),
    ("kv_quant", 0.125, "KV quantization (quanto), int2 keys and values, 12.5% of KV bytes"),
    ("duo_attention", 0.25, "DuoAttention, 75% of heads streaming, 25% of KV bytes, logically"),
    ("full", 1.0, "Full cache"),
    ("imported_method", 0.3, "imported_method 30%"),
])
def test_a_point_is_labelled_with_its_budget_and_the_methods_own_setting(name: str, budget: float,
                                                                        label: str) -> None:
    assert registry.point_label(name, budget) == label


# --- what a version offers and a request runs -----------------------------------------------------------------------

def test_a_version_offers_each_method_its_own_budgets_and_never_a_pair_the_registry_refuses() -> None:
    offered, refused = registry.offered_points(["full", "snapkv", "think", "kv_quant"], [1.0, 0.5, 0.25],
                                               {"think": [0.8, 0.7, 0.5]}, context_tokens=512)
    assert offered == {"snapkv": [0.5, 0.25], "think": [0.8, 0.7], "kv_quant": [0.25]}
    assert [(m, b) for m, b, _ in refused] == [("think", 0.5), ("kv_quant", 0.5)]


def test_a_request_runs_each_chosen_method_at_the_chosen_budgets_it_is_offered_at() -> None:
    offered = {"snapkv": [0.5, 0.25], "think": [0.8, 0.7]}
    assert registry.requested_points(["full", "snapkv", "think"], [1.0, 0.8, 0.25], offered) == [
        ("snapkv", 0.25), ("think", 0.8)]
    with pytest.raises(registry.MethodError, match=r"think runs at 0\.8, 0\.7 in this version"):
        registry.requested_points(["snapkv", "think"], [0.25], offered)
    with pytest.raises(registry.MethodError, match=r"budget 0\.1 is not offered for snapkv"):
        registry.requested_points(["snapkv"], [0.1], offered)
    why = "think cannot run at budget 0.5 (100% of key channels pruned): ..."
    with pytest.raises(registry.MethodError, match=r"100% of key channels pruned"):
        registry.requested_points(["think"], [0.5], offered, [("think", 0.5, why)])


# --- refused alike by the version checks, the form, the pre-flight and the evaluate command -------------------------

@pytest.mark.django_db
def test_a_draft_listing_a_pair_its_method_cannot_honour_is_refused_with_the_reason_and_what_to_offer() -> None:
    from django.core.exceptions import ValidationError

    from leaderboard import versioning
    from tests.factories import make_version

    draft = make_version("kvb", kv_methods=["full", "snapkv", "think"], kv_budgets=[1.0, 0.5, 0.25])
    with pytest.raises(ValidationError) as refused:
        versioning.publish(draft)
    message = refused.value.message_dict["kv_budgets"][0]
    assert "think cannot run at budget 0.5 (100% of key channels pruned)" in message
    assert '{"think": [0.8, 0.75, 0.7]}' in message
    draft.kv_method_budgets = {"think": [0.8, 0.7]}
    draft.save()
    published = versioning.publish(draft)
    assert published.kv_offered() == {"snapkv": [0.5, 0.25], "think": [0.8, 0.7]}
    assert versioning.spec_of(published)["kv_method_budgets"] == {"think": [0.8, 0.7]}


@pytest.mark.django_db
def test_per_method_budgets_must_belong_to_a_listed_compressing_method() -> None:
    from django.core.exceptions import ValidationError

    from tests.factories import make_version

    draft = make_version("kvc", kv_methods=["full", "snapkv"], kv_budgets=[1.0, 0.5],
                         kv_method_budgets={"think": [0.8]})
    with pytest.raises(ValidationError, match="think must be among the version's compressing KV methods"):
        draft.full_clean()


@pytest.mark.django_db
def test_v1_and_smoke_offer_every_method_only_budgets_it_can_honour_and_keep_their_spec_hash() -> None:
    from django.core.management import call_command

    from leaderboard import versioning
    from leaderboard.models import BenchmarkVersion

    call_command("seed_versions")
    for version in BenchmarkVersion.objects.filter(slug__in=["v1", "smoke"]):
        assert version.kv_refused() == []
        for name, budgets in version.kv_offered().items():
            for budget in budgets:
                registry.check_budget(name, budget, context_tokens=min(version.lengths))
        assert "kv_method_budgets" not in versioning.spec_of(version)  # unused: the published hash is unchanged
        assert versioning.spec_hash(version) == version.spec_hash


def legacy_version(slug: str, **fields: object):
    """A version published before the registry refused some of its pairs: stored as it was, never re-checked."""
    from leaderboard import versioning
    from leaderboard.models import BenchmarkVersion, VersionStatus
    from tests.factories import make_version

    version = make_version(slug, **fields)
    BenchmarkVersion.objects.filter(pk=version.pk).update(status=VersionStatus.PUBLISHED,
                                                          spec_hash=versioning.spec_hash(version))
    version.refresh_from_db()
    return version


@pytest.mark.django_db
def test_a_published_version_never_offers_a_pair_the_registry_now_refuses_and_its_page_says_why(client) -> None:
    version = legacy_version("old", kv_methods=["full", "snapkv", "think"], kv_budgets=[1.0, 0.5])
    assert version.kv_offered() == {"snapkv": [0.5], "think": []}
    page = client.get(f"/versions/{version.slug}/").content.decode()
    assert "SnapKV, 50% of tokens evicted, 50% of KV bytes" in page
    assert "think at 0.5: think cannot run at budget 0.5 (100% of key channels pruned)" in page


@pytest.mark.django_db
def test_the_worker_pre_flight_refuses_a_pair_the_registry_refuses_before_any_model_loads() -> None:
    from evalworkers import runner
    from leaderboard.models import ModelKind, SubmissionStatus
    from tests.factories import make_entry, make_submission

    version = legacy_version("old2", kv_methods=["full", "think"], kv_budgets=[1.0, 0.5])
    entry = make_entry(kind=ModelKind.HUGGINGFACE, hf_repo="reference", endpoint_url="", api_model_name="")
    sub = make_submission(version=version, model=entry, kv_methods=["full", "think"], kv_budgets=[1.0, 0.5])
    assert runner.start(sub.pk).cell_ids == []
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.FAILED and not sub.cells.exists()
    assert sub.failure_reason.startswith("think cannot run at budget 0.5 (100% of key channels pruned)")


@pytest.mark.django_db
def test_the_evaluate_command_refuses_think_at_half_the_cache_with_the_reason() -> None:
    from django.core.management import CommandError, call_command

    call_command("seed_versions")
    with pytest.raises(CommandError, match=r"--methods/--budgets: think cannot run at budget 0\.5 \(100% of key"):
        call_command("evaluate", "--local", "reference", "--version", "smoke", "--methods", "full,think",
                     "--budgets", "0.5", "--lengths", "512", "--limit", "1")
