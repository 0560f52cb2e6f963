"""Token counters: exact Hugging Face counts, cached piece counts, and a calibrated estimate for endpoints."""

import pytest
from tokenizers import Tokenizer

from evalworkers.benchmark import CalibratedCounter, HFTokenCounter, TokenCounter
from tests.benchmark_helpers import TOKENIZER_PATH, bpe_counter


def test_hf_counter_counts_like_the_tokenizer_without_special_tokens():
    tok = Tokenizer.from_file(str(TOKENIZER_PATH))
    counter = HFTokenCounter(tok)
    text = "The grass is green. The sky is blue."
    assert counter.count(text) == len(tok.encode(text, add_special_tokens=False).ids)
    assert isinstance(counter, TokenCounter)


def test_counter_from_file_matches_counter_from_tokenizer():
    text = "One of the special magic numbers for calm-river is: 4835748."
    assert HFTokenCounter.from_file(TOKENIZER_PATH).count(text) == bpe_counter().count(text)


def test_transformers_style_tokenizers_are_unwrapped_to_their_backend():
    class FastTokenizerLike:  # what transformers' PreTrainedTokenizerFast exposes
        def __init__(self, backend):
            self.backend_tokenizer = backend

    tok = Tokenizer.from_file(str(TOKENIZER_PATH))
    assert HFTokenCounter(FastTokenizerLike(tok)).count("Here we go.") == len(tok.encode("Here we go.").ids)
    with pytest.raises(TypeError):
        HFTokenCounter(object())


def test_count_many_matches_count_for_each_piece():
    counter = bpe_counter()
    pieces = [" The sun is yellow.", "\nVAR ABCDE = 12345.", " 17.", " apple", " The sun is yellow."]
    assert counter.count_many(pieces) == [counter.count(p) for p in pieces]


def test_calibrated_counter_starts_from_the_probe_ratio():
    counter = CalibratedCounter.from_probe("x" * 400, 100, margin=0.0)
    assert counter.chars_per_token == pytest.approx(4.0)
    assert counter.count("y" * 1000) == 250


def test_calibrated_counter_moves_toward_reported_usage():
    counter = CalibratedCounter(4.0, margin=0.0)
    for _ in range(20):
        counter.update("z" * 30_000, 10_000)  # the endpoint reports 3 chars per token
    assert counter.chars_per_token == pytest.approx(3.0, rel=0.01)
    counter.update(0, 100)  # nonsense observations are ignored
    assert counter.chars_per_token == pytest.approx(3.0, rel=0.01)


def test_calibrated_counter_overestimates_by_its_margin():
    assert CalibratedCounter(4.0, margin=0.05).count("a" * 4000) == 1050
    with pytest.raises(ValueError):
        CalibratedCounter(0)
