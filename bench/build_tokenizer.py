"""Train the small byte-level BPE tokenizer that the tests and the benchmark use (tests/data/prose-bpe-8k.json).

Trained on the repository's own generated prose and word lists, so nothing is downloaded. Run it again only if
the prose bank changes; the golden hashes in the tests depend on the committed file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalworkers.benchmark import lexicon, prose  # noqa: E402
from evalworkers.benchmark.rng import Rng  # noqa: E402

DEFAULT_PATH = ROOT / "tests" / "data" / "prose-bpe-8k.json"


def training_corpus() -> list[str]:
    rng = Rng(b"tokenizer-corpus")
    lines = [" ".join(p) for p in prose.paragraphs()]
    for kind in ("adjectives", "nouns", "verbs", "first_names", "last_names", "professions", "colors"):
        lines.append(" ".join(lexicon.words(kind)))
    for _ in range(3000):
        value_type = rng.choice(lexicon.VALUE_TYPES)
        key = lexicon.random_value(rng, "words")
        lines.append(f"One of the special magic {value_type} for {key} is: {lexicon.random_value(rng, value_type)}.")
    return lines


def build(vocab_size: int = 8000) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    return tok


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    out.parent.mkdir(parents=True, exist_ok=True)
    build().save(str(out))
    print(out, out.stat().st_size)
