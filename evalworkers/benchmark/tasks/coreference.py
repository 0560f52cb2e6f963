"""Multi-round coreference in the style of OpenAI's MRCR (after DeepMind's Michelangelo): a long conversation in
which a user asks for many short pieces of a few kinds (a short poem about the heron, a riddle about the lantern)
and the assistant writes each; some request is asked several times. The question asks for the assistant's n-th
reply to that request, reproduced exactly and prefixed with a given random string. Scored by MRCR's sequence ratio
(``scoring.sequence_ratio``).

Our own content: the pieces are filled from the project's word lists with templates written for it. The
conversation is rendered as a transcript inside one prompt (``User:`` / ``Assistant:`` turns), so every backend
sees the same text. Filler turns come from a fixed bank (identical on every machine, counted once per tokenizer,
so a 1M-token conversation costs about one tokenization to size), shuffled for each sample, with the asked request
removed; the asked request's replies are written for the sample. The bank holds 4,096 exchanges (about 300K tokens),
so past that a filler exchange recurs word for word; the asked request never does.

Sources: the openai/mrcr dataset card on Hugging Face (the layout: repeated requests in one conversation, the
n-th reply asked for with a random string to prepend; its ``grade`` function) and Vodrahalli et al. 2024,
"Michelangelo: Long Context Evaluations Beyond Haystacks via Latent Structure Queries" (the task's origin). MRCR
sends the conversation as chat messages and draws its pieces from a model; ours is one prompt of generated pieces.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable
from functools import cache

from ..lexicon import words
from ..params import Param
from ..plan import Plan, TaskContext, TaskType
from ..rng import Rng
from ..scoring import PREFIX_CHARS
from ..sizing import HaystackBuilder, Insert, UnitStream

# How each kind is requested: the phrase the question repeats word for word.
KINDS: dict[str, str] = {
    "poem": "a short poem",
    "riddle": "a riddle",
    "story": "a very short story",
    "toast": "a toast",
}
BANK_TURNS = 4096
TURN_SEPARATOR = "\n\n"
_PREFIX_ALPHABET = string.ascii_letters + string.digits
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
             "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth")


def _an(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


class _Slots:
    """Random words for one piece: an adjective, a noun (never the subject), a verb, or a verb in the third person."""

    def __init__(self, rng: Rng, subject: str) -> None:
        self._rng = rng
        self.subject = subject

    def adj(self) -> str:
        return self._rng.choice(words("adjectives"))

    def noun(self) -> str:
        noun = self._rng.choice(words("nouns"))
        return noun if noun != self.subject else self._rng.choice(words("nouns"))

    def verb(self) -> str:
        return self._rng.choice(words("verbs"))

    def verb3(self) -> str:
        return _third_person(self.verb())


def _poem(rng: Rng, subject: str) -> str:
    s = _Slots(rng, subject)
    lines: list[Callable[[], str]] = [
        lambda: f"O {subject}, {s.adj()} and {s.adj()}, you {s.verb()} the {s.noun()}",
        lambda: f"the {s.adj()} {s.noun()} {s.verb3()} beside the {subject}",
        lambda: f"I watched the {subject} {s.verb()} {_an(s.adj())} {s.noun()}",
        lambda: f"and still the {subject} {s.verb3()} in {s.adj()} light",
        lambda: f"beneath {_an(s.adj())} {s.noun()} the {subject} {s.verb3()}",
        lambda: f"no {s.noun()} is ever as {s.adj()} as the {subject}",
        lambda: f"the {subject} will {s.verb()} until the {s.noun()} turns {s.adj()}",
        lambda: f"{_an(s.noun())} of {s.adj()} dreams {s.verb3()} near the {subject}",
    ]
    picked = rng.sample(lines, 4)
    text = ",\n".join(line() for line in picked) + "."
    return text[0].upper() + text[1:]


def _riddle(rng: Rng, subject: str) -> str:
    s = _Slots(rng, subject)
    return (f"I {s.verb()} the {s.noun()} but never {s.verb()} the {s.noun()}. "
            f"I am {s.adj()} at dawn and {s.adj()} at dusk, and I keep {_an(s.adj())} {s.noun()} close. "
            f"What am I? I am the {subject}.")


def _story(rng: Rng, subject: str) -> str:
    s = _Slots(rng, subject)
    return (f"{_an(s.adj()).capitalize()} {subject} lived beside {_an(s.adj())} {s.noun()}. Every day it tried to "
            f"{s.verb()} the {s.noun()}, and every day the {s.noun()} refused. "
            f"One {s.adj()} evening {_an(s.noun())} arrived, and the {subject} finally learned to {s.verb()}.")


def _toast(rng: Rng, subject: str) -> str:
    s = _Slots(rng, subject)
    return (f"Raise your glasses to the {subject}: may it always {s.verb()} the {s.adj()} {s.noun()}, "
            f"may its {s.noun()} stay {s.adj()}, and may it never have to {s.verb()} alone.")


WRITERS: dict[str, Callable[[Rng, str], str]] = {"poem": _poem, "riddle": _riddle, "story": _story, "toast": _toast}


def request(kind: str, subject: str) -> str:
    return f"Write {KINDS[kind]} about the {subject}."


def turn(kind: str, subject: str, reply: str) -> str:
    """One exchange as the transcript shows it."""
    return f"User: {request(kind, subject)}\nAssistant: {reply}"


@cache
def bank() -> tuple[tuple[str, str, str], ...]:
    """The filler exchanges: (kind, subject, text), identical on every machine."""
    rng = Rng(hashlib.sha256(b"longctx-mrcr-bank-v1").digest())
    kinds, nouns = sorted(KINDS), words("nouns")
    out = []
    for _ in range(BANK_TURNS):
        kind, subject = rng.choice(kinds), rng.choice(nouns)
        out.append((kind, subject, turn(kind, subject, WRITERS[kind](rng, subject))))
    return tuple(out)


def _filler(rng: Rng, asked: tuple[str, str]) -> Callable[[int], list[str]]:
    """Bank exchanges in an order reshuffled each cycle, never the asked request."""
    entries = [text for kind, subject, text in bank() if (kind, subject) != asked]
    order: list[int] = []

    def more(want: int) -> list[str]:
        out: list[str] = []
        while len(out) < want:
            if not order:
                order.extend(range(len(entries)))
                rng.shuffle(order)
            out.append(TURN_SEPARATOR + entries[order.pop()])
        return out

    return more


def prefix_of(rng: Rng) -> str:
    return "".join(rng.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_CHARS))


def plan_mrcr(ctx: TaskContext) -> Plan:
    k = ctx.params["num_needles"]
    draw = ctx.rng.child("needles")
    kind = draw.choice(sorted(KINDS))
    subject = draw.choice(words("nouns"))
    prefix = prefix_of(draw)
    replies: list[str] = []
    while len(replies) < k:
        reply = WRITERS[kind](draw, subject)
        if reply not in replies:
            replies.append(reply)
    asked = draw.below(k)
    # Distinct depths in ascending order, so the i-th reply in the text is the i-th of the request.
    depths = sorted(ctx.rng.child("depth").sample(range(101), k))
    inserts = [
        Insert(turn(kind, subject, reply), depth, TURN_SEPARATOR, {"occurrence": i + 1, "asked": i == asked})
        for i, (reply, depth) in enumerate(zip(replies, depths, strict=True))
    ]
    stream = UnitStream(ctx.counter, _filler(ctx.rng.child("haystack"), (kind, subject)))
    builder = HaystackBuilder(ctx.counter, stream, inserts)
    ordinal = _ORDINALS[asked]
    question = (
        f"Question: Repeat, exactly as it was written, the assistant's {ordinal} reply (counting from the start "
        f"of the conversation) to the request \"{request(kind, subject)}\" Start your answer with {prefix} and "
        "write nothing else."
    )
    return Plan(
        "Below is a long conversation between a user and an assistant. Read it carefully: afterwards you will be "
        "asked to repeat one of the assistant's replies word for word.",
        question,
        "",  # the reply itself must start with the prefix, so nothing is put before it
        [prefix + replies[asked]],
        builder,
        separators=("\n\n", "\n\n"),
        metadata={"kind": kind, "subject": subject, "occurrence": asked + 1, "num_needles": k,
                  "prefix": prefix},
    )


TASKS = [
    TaskType(
        "mrcr", "retrieval", "sequence_ratio", 256,
        {"num_needles": Param("int", 2, "times the asked request occurs (MRCR: 2, 4 or 8)", minimum=1,
                              maximum=len(_ORDINALS))},
        plan_mrcr,
        "A long conversation of short pieces on request; asks for the n-th reply to a repeated request, "
        "reproduced exactly after a given prefix (OpenAI MRCR's task, our own content).",
    ),
]
