"""An answer function for the fake OpenAI server that really reads the prompt, like a model would.

It finds the asked key in the question and its value in the context; it answers wrongly on purpose for
values divisible by `wrong_every`, so the expected score of any set of samples is known in advance.
"""

from __future__ import annotations

import re

from tests.fake_openai import FakeCall

QUESTION = re.compile(r"special magic \w+ for (\S+?) mentioned")


def answer_value(value: str, wrong_every: int) -> bool:
    return not (wrong_every and int(value) % wrong_every == 0)


def needle_reader(wrong_every: int = 3):
    def answer(call: FakeCall) -> str:
        asked = QUESTION.search(call.prompt)
        if asked is None:
            return "I cannot find a question."
        key = re.escape(asked.group(1))
        found = re.search(rf"special magic \w+ for {key} is: (\S+?)\.(?:\s|$)", call.prompt)
        if found is None:
            return "The text does not say."
        value = found.group(1)
        return value if answer_value(value, wrong_every) else "I am not sure."

    return answer


def expected_score(expected_values: list[str], wrong_every: int) -> float:
    right = sum(answer_value(v, wrong_every) for v in expected_values)
    return 100.0 * right / len(expected_values)
