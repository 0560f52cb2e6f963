"""The KV method registry and compressed generation: exact full cache, measured bytes per method, OOM as a result."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evalworkers.backends.base import GenerationRequest
from evalworkers.backends.local import LocalBackend, LocalModelConfig, load, render
from evalworkers.kv import registry
from evalworkers.kv.generation import generate
from evalworkers.kv.measure import KVOutOfMemory

PHYSICAL = ["streaming_llm", "snapkv", "pyramidkv", "tova", "knorm", "observed_attention", "expected_attention",
            "keydiff", "chunkkv"]
LOGICAL = ["adakv_snapkv", "think"]
CONTEXT = " ".join(f"Line {i}: the river keeps {i * 7 % 13} stones and {i % 5} reeds." for i in range(60))


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path):
    return load(LocalModelConfig(source=str(tiny_llama)))


def ids(tiny, text: str) -> torch.Tensor:
    return tiny.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids


def request(question: str = "Which line mentions 5 stones?") -> GenerationRequest:
    user = f"Read this.\n{CONTEXT}\nQuestion: {question}"
    return GenerationRequest(messages=[{"role": "user", "content": user}], max_new_tokens=12,
                             compress_until=len(f"Read this.\n{CONTEXT}"))


def test_full_cache_gives_exactly_the_tokens_of_plain_greedy_generate(tiny) -> None:
    prefix, suffix = render(tiny.tokenizer, request())
    prompt = torch.cat([ids(tiny, prefix), ids(tiny, suffix)], dim=1)
    expected = tiny.model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12,
                                   do_sample=False, eos_token_id=tiny.eos_ids, pad_token_id=tiny.eos_ids[0])
    for method in ("full", "snapkv", "streaming_llm"):  # budget 1.0 of any method is the uncompressed model
        tokens, gen = generate(tiny.model, ids(tiny, prefix), ids(tiny, suffix), registry.plan(method, 1.0),
                               max_new_tokens=12, eos_ids=tiny.eos_ids)
        assert tokens == expected[0, prompt.shape[1]:].tolist(), method
        assert gen.efficiency.kv_bytes == gen.efficiency.kv_bytes_full and gen.efficiency.kept_fraction == 1.0


@pytest.mark.parametrize("method", PHYSICAL)
@pytest.mark.parametrize("budget", [0.5, 0.25])
def test_a_physical_method_keeps_its_budget_of_the_cache_bytes(tiny, method: str, budget: float) -> None:
    prefix, suffix = render(tiny.tokenizer, request())
    _, gen = generate(tiny.model, ids(tiny, prefix), ids(tiny, suffix), registry.plan(method, budget),
                      max_new_tokens=4, eos_ids=tiny.eos_ids)
    assert gen.efficiency.physical is True
    # kvpress keeps int(n * budget) tokens per head (rounded down): within 2% of budget x full bytes. ChunkKV
    # rounds to whole chunks of 20 tokens, and its last chunk may be partial, so one chunk more is allowed.
    per_token = gen.efficiency.kv_bytes_full / gen.compressed_tokens
    slack = max(0.02 * budget * gen.efficiency.kv_bytes_full, 20 * per_token if method == "chunkkv" else 0)
    assert abs(gen.efficiency.kv_bytes - budget * gen.efficiency.kv_bytes_full) <= slack
    assert gen.compressed_tokens < gen.prompt_tokens  # context-only: the question was not compressed


@pytest.mark.parametrize("method", LOGICAL)
def test_a_logical_only_method_records_the_full_bytes_it_really_holds(reference_models_dir: Path,
                                                                      method: str) -> None:
    # The reference model: AdaKV's key masking needs real attention geometry (random tiny heads defeat it).
    model = load(LocalModelConfig(source="reference", models_dir=reference_models_dir))
    prefix, suffix = render(model.tokenizer, request())
    budget = registry.METHODS[method].budgets.points[0]  # AdaKV 0.5; ThinK 0.8 (40% of key channels pruned)
    _, gen = generate(model.model, ids(model, prefix), ids(model, suffix), registry.plan(method, budget),
                      max_new_tokens=4, eos_ids=model.eos_ids)
    assert gen.efficiency.physical is False
    assert gen.efficiency.kv_bytes == gen.efficiency.kv_bytes_full
    assert gen.efficiency.kept_fraction == pytest.approx(budget, abs=1 / 128)  # ThinK: whole channels of 64


@pytest.mark.parametrize(("budget", "bits"), [(0.25, 4), (0.125, 2)])
def test_the_quantized_cache_is_measured_by_its_packed_size(tiny, budget: float, bits: int) -> None:
    plan = registry.plan("kv_quant", budget)
    assert plan.quant_bits == bits
    prefix, suffix = render(tiny.tokenizer, request())
    _, gen = generate(tiny.model, ids(tiny, prefix), ids(tiny, suffix), plan, max_new_tokens=4,
                      eos_ids=tiny.eos_ids)
    # Packed integers plus per-group scales and shifts: a little above bits/16, far below the full cache.
    assert budget < gen.efficiency.kept_fraction < budget * 1.35


def test_query_aware_compresses_the_question_with_the_context(tiny) -> None:
    prefix, suffix = render(tiny.tokenizer, request())
    plan = registry.plan("snapkv", 0.25)
    _, context_only = generate(tiny.model, ids(tiny, prefix), ids(tiny, suffix), plan, max_new_tokens=2,
                               eos_ids=tiny.eos_ids)
    _, aware = generate(tiny.model, ids(tiny, prefix), ids(tiny, suffix), plan, max_new_tokens=2,
                        eos_ids=tiny.eos_ids, query_aware=True)
    assert context_only.compressed_tokens == ids(tiny, prefix).shape[1]
    assert aware.compressed_tokens == aware.prompt_tokens and aware.efficiency.query_aware


def test_the_memory_cap_stops_the_full_cache_and_lets_a_small_budget_fit(tiny) -> None:
    prefix, suffix = render(tiny.tokenizer, request())
    full_bytes = registry.plan("full", 1.0)
    _, gen = generate(tiny.model, ids(tiny, prefix), ids(tiny, suffix), full_bytes, max_new_tokens=2,
                      eos_ids=tiny.eos_ids)
    cap = gen.efficiency.kv_bytes // 2
    with pytest.raises(KVOutOfMemory) as raised:
        generate(tiny.model, ids(tiny, prefix), ids(tiny, suffix), full_bytes, max_new_tokens=2,
                 eos_ids=tiny.eos_ids, memory_limit_bytes=cap)
    assert raised.value.reached > cap
    backend = LocalBackend(tiny, "streaming_llm", 0.25, memory_limit_bytes=cap)
    assert backend.generate(request()).ok
    oom = LocalBackend(tiny, "full", 1.0, memory_limit_bytes=cap).generate(request())
    assert oom.error.startswith("out of memory") and oom.out_of_memory and oom.reached_bytes > cap


def test_the_chat_template_is_split_where_the_question_starts(tiny) -> None:
    prefix, suffix = render(tiny.tokenizer, request("What now?"))
    assert prefix.rstrip().endswith(CONTEXT.split()[-1]) and suffix.lstrip().startswith("Question: What now?")
    assert "<|im_start|>assistant" in suffix  # the generation prompt stays with the uncompressed part


@pytest.mark.parametrize(("method", "budget", "message"), [
    ("h3o", 0.5, "unknown KV method 'h3o'"),
    ("snapkv", 0.0, "not a fraction in (0, 1]"),
    ("full", 0.5, "budget 1.0 only"),
    ("think", 0.5, "think cannot run at budget 0.5 (100% of key channels pruned)"),
    ("kv_quant", 0.5, "quanto packs int4 or int2 only (0.25 or 0.125)"),
    ("duo_attention", 0.5, "set KV_FILES_DIR"),
])
def test_a_method_that_cannot_run_says_why(method: str, budget: float, message: str) -> None:
    with pytest.raises(registry.MethodError, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.plan(method, budget)


def test_a_method_needing_files_finds_them_under_kv_files_dir_for_its_model(tmp_path: Path) -> None:
    duo = registry.METHODS["duo_attention"]
    with pytest.raises(registry.MethodError, match="that folder does not exist"):
        registry.files_for(duo, tmp_path, "org/some-model")
    (tmp_path / "duo_attention" / "some-model").mkdir(parents=True)
    assert registry.files_for(duo, tmp_path, "org/some-model") == tmp_path / "duo_attention" / "some-model"
