"""Aggregation tasks: RULER's common-words (CWE) and frequent-words (FWE) extraction."""

from __future__ import annotations

import string
from decimal import Decimal, localcontext
from itertools import accumulate
from typing import Any

from ..errors import SpecError
from ..lexicon import english_words, pseudo_word
from ..params import Param
from ..plan import Plan, TaskContext, TaskType
from ..rng import Rng
from ..sizing import BuiltContext, TooShort, largest_fitting
from ..templates import TEMPLATE, V1, template_of
from ..tokens import TokenCounter


class WordPool:
    """Distinct words in a random order: the real word list first, then made-up words when it runs out."""

    def __init__(self, rng: Rng) -> None:
        self._rng = rng
        self.words = list(english_words())
        rng.shuffle(self.words)
        self._seen = set(self.words)

    def ensure(self, n: int) -> None:
        while len(self.words) < n:
            w = pseudo_word(self._rng, 2 + self._rng.below(2))
            if w not in self._seen:
                self._seen.add(w)
                self.words.append(w)


class CommonWordsBuilder:
    """A numbered list ("1. word 2. word ...") where ``num_cw`` words repeat ``freq_cw`` times, the others
    ``freq_ucw`` times; leftover tokens go to words that appear once, which cannot change the answer."""

    def __init__(self, counter: TokenCounter, rng: Rng, num_cw: int, freq_cw: int, freq_ucw: int) -> None:
        self._counter = counter
        self._pool = WordPool(rng.child("words"))
        self._order_rng = rng.child("order")
        self.num_cw, self.freq_cw, self.freq_ucw = num_cw, freq_cw, freq_ucw
        self._word_tokens: list[int] = []
        self._label_prefix: list[int] = [0]

    @property
    def common(self) -> list[str]:
        return self._pool.words[: self.num_cw]

    def _words_upto(self, n: int) -> None:
        if n > len(self._word_tokens):
            n = max(n, 2 * len(self._word_tokens))
            self._pool.ensure(n)
            fresh = self._pool.words[len(self._word_tokens) : n]
            self._word_tokens.extend(self._counter.count_many([" " + w for w in fresh]))

    def _labels(self, k: int) -> int:
        have = len(self._label_prefix) - 1
        if k > have:
            top = max(k, 2 * have)
            more = self._counter.count_many([f" {i}." for i in range(have + 1, top + 1)])
            self._label_prefix.extend(list(accumulate(more, initial=self._label_prefix[-1]))[1:])
        return self._label_prefix[k]

    def _cost(self, uncommon: int, singles: int) -> int:
        self._words_upto(self.num_cw + uncommon + singles)
        wt = self._word_tokens
        items = self.num_cw * self.freq_cw + uncommon * self.freq_ucw + singles
        return (
            self.freq_cw * sum(wt[: self.num_cw])
            + self.freq_ucw * sum(wt[self.num_cw : self.num_cw + uncommon])
            + sum(wt[self.num_cw + uncommon : self.num_cw + uncommon + singles])
            + self._labels(items)
        )

    def minimum_tokens(self) -> int:
        return self._cost(0, 0)

    def build(self, budget: int) -> BuiltContext:
        if self.minimum_tokens() > budget:
            raise TooShort(self.minimum_tokens())
        uncommon = largest_fitting(lambda k: self._cost(k, 0), budget)  # largest count of uncommon words
        singles = 0
        while self._cost(uncommon, singles + 1) <= budget:
            singles += 1
        words = self._pool.words
        items = (
            words[: self.num_cw] * self.freq_cw
            + words[self.num_cw : self.num_cw + uncommon] * self.freq_ucw
            + words[self.num_cw + uncommon : self.num_cw + uncommon + singles]
        )
        self._order_rng.shuffle(items)
        text = " ".join(f"{i}. {w}" for i, w in enumerate(items, start=1))
        meta = {"uncommon_words": uncommon, "single_words": singles, "items": len(items)}
        return BuiltContext(text, self._cost(uncommon, singles), meta)


CWE_INSTRUCTION = ("Below is a numbered list of words. In these words, some appear more often than others. "
                   "Memorize the ones that appear most often.")


def _cwe_question(n: int) -> str:
    return f"Question: What are the {n} most common words in the above list?"


def _cwe_answer_prefix(n: int) -> str:
    return f"Answer: The top {n} words that appear most often in the list are:"


def _numbered(words: list[str]) -> str:
    return " ".join(f"{i}. {w}" for i, w in enumerate(words, start=1))


def cwe_example(rng: Rng, num_cw: int, short: bool, avoid: set[str]) -> str:
    """RULER's worked example (common_words_extraction.py, ``num_fewshot`` 1), our own draw: below 4K, 10 words
    of which ``num_cw`` appear 3 times and the rest once; from 4K, 40 words, ``num_cw`` of them 10 times and the
    rest 3 times; the whole prompt for it, then its numbered answer. Its words avoid the sample's common ones."""
    total, freq_cw, freq_ucw = (20, 3, 1) if short else (40, 10, 3)
    pool = [w for w in english_words() if w not in avoid]
    words = rng.sample(pool, max(total, num_cw + 1))
    common, uncommon = words[:num_cw], words[num_cw:]
    items = common * freq_cw + uncommon * freq_ucw
    rng.shuffle(items)
    return (f"{CWE_INSTRUCTION}\n{_numbered(items)}\n{_cwe_question(num_cw)} {_cwe_answer_prefix(num_cw)} "
            f"{_numbered(common)}")


def plan_common_words(ctx: TaskContext) -> Plan:
    p = ctx.params
    short = ctx.length < p["short_length"]
    freq_cw = p["short_freq_cw"] if short else p["freq_cw"]
    freq_ucw = p["short_freq_ucw"] if short else p["freq_ucw"]
    builder = CommonWordsBuilder(ctx.counter, ctx.rng, p["num_cw"], freq_cw, freq_ucw)
    n = p["num_cw"]
    template = template_of(p)
    metadata: dict[str, Any] = {"freq_cw": freq_cw, "freq_ucw": freq_ucw}
    instruction = CWE_INSTRUCTION
    if template != V1:
        # RULER opens with the worked example, then a newline, then the task (common_words_extraction.py).
        instruction = cwe_example(ctx.rng.child("example"), n, short, set(builder.common)) + "\n" + CWE_INSTRUCTION
        metadata["template"] = template
    return Plan(
        instruction,
        _cwe_question(n),
        _cwe_answer_prefix(n),
        list(builder.common),
        builder,
        metadata=metadata,
    )


def _check_cwe(params: dict[str, Any]) -> None:
    for cw, ucw in (("freq_cw", "freq_ucw"), ("short_freq_cw", "short_freq_ucw")):
        if params[ucw] >= params[cw]:
            raise SpecError(f"params.{ucw}", f"must be below {cw} ({params[cw]}) or the common words are not common")


def zipf_weights(vocab_size: int, alpha: float) -> list[float]:
    """k^-alpha / zeta(alpha) for k = 1..vocab_size, as RULER's FWE uses, computed in decimal arithmetic so the
    floats are the same on every platform (libm's pow may differ in the last bit)."""
    with localcontext() as dec:
        dec.prec = 40
        a = Decimal(repr(alpha))
        # zeta(a) = sum_{k<M} k^-a + M^(1-a)/(a-1) + M^-a/2 + a M^(-a-1)/12 (Euler-Maclaurin), ample for a > 1.
        m = 1000
        zeta = sum(Decimal(k) ** -a for k in range(1, m))
        zeta += Decimal(m) ** (1 - a) / (a - 1) + Decimal(m) ** -a / 2 + a * Decimal(m) ** (-a - 1) / 12
        zeta -= a * (a + 1) * (a + 2) * Decimal(m) ** (-a - 3) / 720
        return [float(Decimal(k) ** -a / zeta) for k in range(1, vocab_size + 1)]


class FrequentWordsBuilder:
    """Coded words with Zipf counts floor(N * k^-alpha / zeta(alpha)); rank 1 is the dots noise (RULER)."""

    def __init__(self, counter: TokenCounter, rng: Rng, vocab_size: int, word_len: int, alpha: float,
                 noise: str = "....") -> None:
        vocab: list[str] = []
        seen: set[str] = set()
        rng_vocab = rng.child("vocab")
        while len(vocab) < vocab_size:
            w = "".join(rng_vocab.choice(string.ascii_lowercase) for _ in range(word_len))
            if w not in seen:
                seen.add(w)
                vocab.append(w)
        vocab[0] = noise
        self.vocab = vocab
        self._order_rng = rng.child("order")
        self._weights = zipf_weights(vocab_size, alpha)
        self._tokens = counter.count_many([" " + w for w in vocab])

    def counts(self, n: int) -> list[int]:
        return [int(n * w) for w in self._weights]

    def _cost(self, n: int) -> int:
        return sum(c * t for c, t in zip(self.counts(n), self._tokens, strict=True))

    def _valid(self, n: int) -> bool:
        c = [int(n * w) for w in self._weights[:5]]
        return c[1] > c[2] > c[3] > max(c[4], 1)

    def minimum_tokens(self) -> int:
        n = 1
        while not self._valid(n):
            n += 1
        return self._cost(n)

    def build(self, budget: int) -> BuiltContext:
        n = largest_fitting(self._cost, budget)
        if not self._valid(n):
            raise TooShort(self.minimum_tokens())
        counts = self.counts(n)
        used = self._cost(n)
        # Leftover tokens: one more use each of the rarest words (they stay far below the top three).
        limit = max(counts[4], 1)
        for k in range(len(counts) - 1, 4, -1):
            if counts[k] + 1 < limit and used + self._tokens[k] <= budget:
                counts[k] += 1
                used += self._tokens[k]
        words = [w for w, c in zip(self.vocab, counts, strict=True) for _ in range(c)]
        self._order_rng.shuffle(words)
        return BuiltContext(" ".join(words), used, {"words": len(words), "counts_top": counts[:5]})


# RULER's vocabulary is max_seq_length // 50 words unless given (freq_words_extraction.py); with alpha 2 only the
# first sqrt(0.6 N) ranks of N words ever appear, so the size never binds at RULER's lengths.
FWE_VOCAB_PER_TOKENS = 50


def plan_frequent_words(ctx: TaskContext) -> Plan:
    p = ctx.params
    template = template_of(p)
    vocab_size = p["vocab_size"] if p["vocab_size"] is not None else max(10, ctx.length // FWE_VOCAB_PER_TOKENS)
    # v1 drew "...." (the dots the question names); RULER's generator writes "..." although its question says '....'.
    noise = "...." if template == V1 else "..."
    builder = FrequentWordsBuilder(ctx.counter, ctx.rng, vocab_size, p["word_length"], p["alpha"], noise)
    metadata: dict[str, Any] = {"alpha": p["alpha"]}
    if template != V1:
        metadata.update(template=template, vocab_size=vocab_size)
    return Plan(
        "Read the following coded text and track the frequency of each coded word. "
        "Find the three most frequently appeared coded words.",
        "Question: Do not provide any explanation. Please ignore the dots '....'. "
        "What are the three most frequently appeared words in the above coded text?",
        "Answer: According to the coded text above, the three most frequently appeared words are:",
        builder.vocab[1:4],
        builder,
        separators=(" ", "\n"),
        metadata=metadata,
    )


TASKS = [
    TaskType(
        "common_words", "aggregation", "string_match_all", 120,
        {
            "num_cw": Param("int", 10, "common words (all expected)", minimum=1, maximum=50),
            "freq_cw": Param("int", 30, "repetitions of each common word", minimum=2, maximum=500),
            "freq_ucw": Param("int", 3, "repetitions of each uncommon word", minimum=1, maximum=499),
            "short_length": Param("int", 4096, "below this length, use the short frequencies (RULER)", minimum=0),
            "short_freq_cw": Param("int", 6, "common repetitions at short lengths", minimum=2, maximum=500),
            "short_freq_ucw": Param("int", 1, "uncommon repetitions at short lengths", minimum=1, maximum=499),
            "template": TEMPLATE,
        },
        plan_common_words,
        "A numbered word list; the most common words are asked.",
        _check_cwe,
    ),
    TaskType(
        "frequent_words", "aggregation", "string_match_all", 50,
        {
            "alpha": Param("float", 2.0, "Zipf exponent", minimum=1.05, maximum=10.0),
            "vocab_size": Param("int", 2000, "distinct coded words; null: the length / 50 (RULER)", minimum=10,
                                maximum=20000, nullable=True),
            "word_length": Param("int", 6, "letters per coded word", minimum=3, maximum=12),
            "template": TEMPLATE,
        },
        plan_frequent_words,
        "Zipf-distributed coded words; the three most frequent (after the '....' noise) are asked.",
    ),
]
