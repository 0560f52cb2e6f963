"""Long-generation tasks: the reply, not only the context, is long, and its length is a parameter.

Each type is sized twice: its context to the cell's length (as every task), and its gold reply to ``output_tokens``
tokens of the reading model's tokenizer (the output-length axis). Scoring needs no judge (``long_output``):

- ``record_extraction``: a long table of orders (HTML rows or log lines); every order with a given status is
  written out as a tab-separated table; row-level F1 (LongProc's HTML-to-TSV task, Ye et al. 2025).
- ``many_answers``: K record ids, each answered on its own labelled line in one reply; scored per question, with
  the answer's place in the reply kept (LongGenBench, Liu et al. 2024).
- ``length_following``: an essay of a required word count whose paragraphs must use words named by notes scattered
  through the context; LongWriter's length score plus presence and order of the words (LongWriter, Bai et al.
  2024; Spinning the Golden Thread, 2024).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..haystacks import line_units, prose_units
from ..lexicon import city_name, english_words, pseudo_word, words
from ..long_output import ANSWERS_IN_ORDER, LENGTH_FOLLOWING, ROW_F1
from ..params import Param
from ..plan import Plan, TaskContext, TaskType
from ..prose import corpus_text
from ..rng import Rng
from ..sizing import HaystackBuilder, Insert, UnitStream
from ..tokens import TokenCounter

OUTPUT_TOKENS = Param("int", 128, "the gold reply's length in the reading model's tokens (the token limit adds a "
                      "quarter, at least 32)", minimum=16, maximum=32768)
STATUSES = ("shipped", "pending", "returned", "cancelled", "delayed")
COLUMNS = ("id", "city", "quantity")
TOPICS = (
    "how lighthouses were kept before electricity", "the life of a mountain glacier", "why cities grow along rivers",
    "the craft of building wooden boats", "how bees choose a new home", "the history of public libraries",
    "what makes bread rise", "how night trains changed travel", "the care of an old orchard",
    "how maps were drawn before satellites", "the work of a village blacksmith", "why some deserts bloom",
)


def _output_tokens(params: dict[str, Any]) -> int:
    return int(params["output_tokens"])


def _depth(rng: Rng) -> float:
    return rng.below(10001) / 100


class Ids:
    """Distinct record ids (``R`` and six digits) shared by the asked records and the filler."""

    def __init__(self, rng: Rng) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def fresh(self) -> str:
        while True:
            value = f"R{self._rng.between(100000, 999999)}"
            if value not in self._used:
                self._used.add(value)
                return value


def take_within(counter: TokenCounter, make: Callable[[], str], budget: int, minimum: int = 1) -> list[str]:
    """Lines from ``make`` while their summed token counts stay within ``budget`` (at least ``minimum`` lines).
    Each line is counted with its leading newline, as it sits in the reply."""
    lines: list[str] = []
    used = 0
    while True:
        batch = [make() for _ in range(16)]
        for line, tokens in zip(batch, counter.count_many(["\n" + b for b in batch]), strict=True):
            if used + tokens > budget and len(lines) >= minimum:
                return lines
            lines.append(line)
            used += tokens


# --- procedural extraction -----------------------------------------------------------------------------------------

def _record(rng: Rng, ids: Ids, status: str) -> dict[str, Any]:
    return {"id": ids.fresh(), "city": city_name(rng), "status": status, "quantity": rng.between(1, 999)}


def render_record(record: dict[str, Any], fmt: str) -> str:
    """One order as an HTML table row or a log line."""
    if fmt == "html":
        return (f"<tr> <td>{record['id']}</td> <td>{record['city']}</td> <td>{record['status']}</td> "
                f"<td>{record['quantity']}</td> </tr>")
    return f"order={record['id']} city=\"{record['city']}\" status={record['status']} qty={record['quantity']}"


def gold_row(record: dict[str, Any]) -> str:
    return f"{record['id']}\t{record['city']}\t{record['quantity']}"


def plan_record_extraction(ctx: TaskContext) -> Plan:
    p = ctx.params
    fmt = p["format"]
    rng_records, rng_filler = ctx.rng.child("records"), ctx.rng.child("filler")
    ids = Ids(ctx.rng.child("ids"))
    status = ctx.rng.child("status").choice(STATUSES)
    others = [s for s in STATUSES if s != status]
    header = "\t".join(COLUMNS)
    budget = _output_tokens(p) - ctx.counter.count(header)
    matching: list[dict[str, Any]] = []

    def make_gold() -> str:
        matching.append(_record(rng_records, ids, status))
        return gold_row(matching[-1])

    rows = take_within(ctx.counter, make_gold, budget)
    matching = matching[:len(rows)]
    rng_depth = ctx.rng.child("depths")
    depths = sorted(_depth(rng_depth) for _ in rows)  # in document order, so the table's order is the gold order
    inserts = [Insert(render_record(r, fmt), d, "\n", {"id": r["id"]}) for r, d in zip(matching, depths, strict=True)]
    # The filler is orders of other statuses only, so the last one, cut to fill the length, never matches.
    stream = UnitStream(ctx.counter, line_units(
        lambda: render_record(_record(rng_filler, ids, rng_filler.choice(others)), fmt)))
    what = ("an HTML table of orders, one <tr> row each with the cells id, city, status and quantity"
            if fmt == "html" else "a log of orders, one line each with the fields order (id), city, status and qty")
    return Plan(
        f"Below is {what}.",
        (f"Question: Extract every order whose status is {status}, in the order they appear. Write a table with "
         f"tab-separated columns: first the header line \"{'<TAB>'.join(COLUMNS)}\" (with real tabs), then one line "
         f"per order with its id, city and quantity. Write only the table."),
        "",
        rows,
        HaystackBuilder(ctx.counter, stream, inserts),
        metadata={"columns": list(COLUMNS), "status": status, "gold_rows": len(rows), "format": fmt,
                  "output_tokens": _output_tokens(p),
                  "gold_output_tokens": ctx.counter.count(header + "\n" + "\n".join(rows))},
    )


# --- many answers in one reply -------------------------------------------------------------------------------------

def _entry(rng: Rng, ids: Ids) -> dict[str, Any]:
    return {"id": ids.fresh(), "city": city_name(rng), "item": rng.choice(words("products")),
            "code": str(rng.between(1000, 9999))}


def render_entry(entry: dict[str, Any]) -> str:
    return f"Record {entry['id']}: city {entry['city']}; item {entry['item']}; code {entry['code']}."


def answer_line(number: int, entry: dict[str, Any]) -> str:
    return f"A{number}: {entry['city']}, {entry['item']}, {entry['code']}"


def plan_many_answers(ctx: TaskContext) -> Plan:
    p = ctx.params
    rng_entries, rng_filler = ctx.rng.child("entries"), ctx.rng.child("filler")
    ids = Ids(ctx.rng.child("ids"))
    asked: list[dict[str, Any]] = []

    def make_answer() -> str:
        asked.append(_entry(rng_entries, ids))
        return answer_line(len(asked), asked[-1])

    lines = take_within(ctx.counter, make_answer, _output_tokens(p))
    asked = asked[:len(lines)]
    rng_depth = ctx.rng.child("depths")
    inserts = [Insert(render_entry(e), _depth(rng_depth), "\n", {"id": e["id"], "question": n})
               for n, e in enumerate(asked, start=1)]
    stream = UnitStream(ctx.counter, line_units(lambda: render_entry(_entry(rng_filler, ids))))
    questions = "\n".join(f"Q{n}: {e['id']}" for n, e in enumerate(asked, start=1))
    return Plan(
        "Below is a register of records. Each record gives a city, an item and a code.",
        (f"Question: For each of the {len(asked)} record ids listed below, write one line \"A<n>: city, item, code\" "
         f"with that record's values, numbered as the list is and in its order. Answer every line, and write "
         f"nothing else.\n{questions}"),
        "",
        [f"{e['city']} | {e['item']} | {e['code']}" for e in asked],
        HaystackBuilder(ctx.counter, stream, inserts),
        metadata={"questions": len(asked), "output_tokens": _output_tokens(p),
                  "gold_output_tokens": ctx.counter.count("\n".join(lines))},
    )


# --- length following ----------------------------------------------------------------------------------------------

CALIBRATION_WORDS = 400


def tokens_per_word(counter: TokenCounter) -> float:
    """The reading model's tokens per English word, measured on the first words of the prose bank."""
    sample = " ".join(corpus_text().split()[:CALIBRATION_WORDS])
    return counter.count(sample) / CALIBRATION_WORDS


def plan_length_following(ctx: TaskContext) -> Plan:
    p = ctx.params
    n = p["elements"]
    rng_words = ctx.rng.child("elements")
    elements: list[str] = []
    common = set(english_words())
    while len(elements) < n:
        word = pseudo_word(rng_words, 3)
        if word not in elements and word not in common:
            elements.append(word)
    required = max(10 * n, round(_output_tokens(p) / tokens_per_word(ctx.counter)))
    topic = ctx.rng.child("topic").choice(TOPICS)
    rng_depth = ctx.rng.child("depths")
    inserts = [Insert(f"Writing note {j}: paragraph {j} of the essay must use the word \"{w}\".", _depth(rng_depth),
                      " ", {"paragraph": j, "word": w}) for j, w in enumerate(elements, start=1)]
    stream = UnitStream(ctx.counter, prose_units(ctx.rng.child("haystack")))
    return Plan(
        f"Below is some reading material. {n} writing notes are scattered through it; each names a word that one "
        f"paragraph of an essay must use.",
        (f"Question: Write an essay about {topic} of about {required} words, in exactly {n} paragraphs separated by "
         f"blank lines. Use the word each writing note names in the paragraph the note gives. Write only the essay."),
        "",
        elements,
        HaystackBuilder(ctx.counter, stream, inserts),
        metadata={"required_words": required, "topic": topic, "output_tokens": _output_tokens(p)},
    )


def gold_reply(task_type: str, answers: list[str], metadata: dict[str, Any]) -> str:
    """A reply that scores 100 for a sample (its ``answers`` and ``metadata``): the whole table, every answer line,
    or an essay of exactly the required words with each element in its paragraph. For tests and the docs."""
    if task_type == "record_extraction":
        return "\t".join(metadata["columns"]) + "\n" + "\n".join(answers)
    if task_type == "many_answers":
        return "\n".join(f"A{n}: {a.replace(' | ', ', ')}" for n, a in enumerate(answers, start=1))
    if task_type == "length_following":
        total, n = int(metadata["required_words"]), len(answers)
        filler = sorted(english_words())
        sizes = [total // n + (1 if j < total % n else 0) for j in range(n)]
        paragraphs, k = [], 0
        for element, size in zip(answers, sizes, strict=True):
            body = [filler[(k + i) % len(filler)] for i in range(size - 1)]
            k += size
            paragraphs.append(" ".join([element, *body]))
        return "\n\n".join(paragraphs)
    raise ValueError(f"not a long-generation task type: {task_type!r}")


TASKS = [
    TaskType(
        "record_extraction", "generation", ROW_F1, 160,
        {"output_tokens": OUTPUT_TOKENS,
         "format": Param("choice", "html", "how the orders are written", choices=("html", "log"), noun="format")},
        plan_record_extraction,
        "A long table of orders; every order with one status is written out as a TSV table (row F1, LongProc).",
        output_tokens=_output_tokens,
    ),
    TaskType(
        "many_answers", "generation", ANSWERS_IN_ORDER, 160,
        {"output_tokens": OUTPUT_TOKENS},
        plan_many_answers,
        "K record ids answered on K labelled lines of one reply; scored per question (LongGenBench).",
        output_tokens=_output_tokens,
    ),
    TaskType(
        "length_following", "generation", LENGTH_FOLLOWING, 160,
        {"output_tokens": OUTPUT_TOKENS,
         "elements": Param("int", 4, "paragraphs, each with a required word named in the context", minimum=1,
                           maximum=32)},
        plan_length_following,
        "An essay of a required length whose paragraphs use words named in the context (LongWriter's length score).",
        output_tokens=_output_tokens,
    ),
]
