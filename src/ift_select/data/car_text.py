"""CaR's packed text, as its expert-label CSVs write it: ``src`` = "Instruction: {instruction} [Input: {input} ]",
followed in the score files by "Response: {output}"; the pairs files' ``pos`` / ``neg`` = "Response: {output}"."""

from __future__ import annotations

import re

RESPONSE = "Response: "
_PACKED = re.compile(r"\s*Instruction:\s*(?P<instruction>.*?)(?:\s+Input:\s*(?P<input>.*?))?"
                     r"(?:\s+Response:\s*(?P<output>.*))?\s*", re.DOTALL)


def split_src(text: str) -> tuple[str, str, str | None] | None:
    """(instruction, input, output) of a packed text: instruction and input stripped (input "" when absent), output
    as written after "Response: " (None when absent); None when the text does not start with "Instruction:". The
    first whitespace-led "Input:" after a non-empty instruction and the first "Response:" after that split."""
    match = _PACKED.fullmatch(text)
    if match is None:
        return None
    return match["instruction"], match["input"] or "", match["output"]


def join_src(instruction: str, input: str | None, output: str | None = None) -> str:  # noqa: A002
    """The packed text of a row (``split_src``'s inverse up to whitespace); without ``output``, a pairs ``src``."""
    inp = (input or "").strip()
    return (f"Instruction: {instruction.strip()} " + (f"Input: {inp} " if inp else "") +
            (f"{RESPONSE}{output.strip()}" if output is not None else ""))


def strip_response(text: str) -> str:
    """A ``pos`` / ``neg`` cell's response: without its "Response:" label, stripped."""
    text = text.strip()
    return text[len(RESPONSE.strip()):].strip() if text.startswith(RESPONSE.strip()) else text
