"""Shared helpers for the benchmark tests: the committed test tokenizer and a deliberately awkward one."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, trainers

from evalworkers.benchmark import HFTokenCounter, prose

DATA = Path(__file__).resolve().parent / "data"
TOKENIZER_PATH = DATA / "prose-bpe-8k.json"
GOLDEN_PATH = DATA / "benchmark_golden.json"
VERSIONS_PATH = Path(__file__).resolve().parents[1] / "specs" / "versions.json"


@cache
def bpe_counter() -> HFTokenCounter:
    """The byte-level BPE trained on the repository's prose (bench/build_tokenizer.py)."""
    return HFTokenCounter.from_file(TOKENIZER_PATH)


@cache
def merging_counter() -> HFTokenCounter:
    """A BPE with no pre-tokenizer: its merges cross spaces and newlines, so counts of pieces do not add up
    to the count of their join. Sizing must still land within the target."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["[UNK]"], show_progress=False)
    text = prose.corpus_text()
    chunks = [text[i : i + 300] for i in range(0, 60_000, 300)]
    chunks += ["\nThe grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."] * 50
    tok.train_from_iterator(chunks, trainer=trainer)
    return HFTokenCounter(tok)


def versions() -> list[dict]:
    return json.loads(VERSIONS_PATH.read_text(encoding="utf-8"))["versions"]
