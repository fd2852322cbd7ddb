"""Prompts longer than the window lose the middle of their cuttable fields, never the question or the prefill:
the cutting rule (llm.truncate), the spans templates report, and the local backend, which used to cut from
the right (the rating question and the "Score: " prefill went first, uncounted)."""

from __future__ import annotations

import pytest

from ift_select.llm import ChatRequest, make_backend, run_requests
from ift_select.llm.templates import Template, load_template
from ift_select.llm.truncate import CUT_MARK, PromptTooLong, fit


def chars(request: ChatRequest) -> int:
    return sum(len(c) for _, c in request.messages)


def test_the_longest_span_is_cut_from_its_middle_first():
    long, short = "A" * 50 + "m" * 400 + "Z" * 50, "short answer"
    messages = (("system", "Judge."), ("user", f"Q?\n1: {long}\n2: {short}"), ("assistant", "Verdict: "))
    start = len("Q?\n1: ")
    spans = ((1, start, start + len(long)), (1, start + len(long) + 4, start + len(long) + 4 + len(short)))
    request = ChatRequest(messages=messages, cuttable=spans)
    fitted, cut = fit(request, chars, 200)
    user = fitted.messages[1][1]
    assert chars(fitted) <= 200 and cut == chars(request) - chars(fitted) > 0
    assert fitted.messages[0] == messages[0] and fitted.messages[2] == messages[2]  # question and prefill whole
    assert user.startswith("Q?\n1: AAAA") and CUT_MARK in user and f"ZZZZ\n2: {short}" in user  # short one kept
    assert "m" * 300 not in user
    assert fit(request, chars, 10_000) == (request, 0)


def test_a_prompt_that_cannot_fit_is_refused_with_both_counts():
    request = ChatRequest(messages=(("user", "Q" * 300 + "resp"),), cuttable=((0, 300, 304),))
    with pytest.raises(PromptTooLong, match=r"prompt is 304 tokens \(30[0-9] with its cuttable fields cut\)"):
        fit(request, chars, 100)
    with pytest.raises(PromptTooLong, match="none of it is marked cuttable"):
        fit(ChatRequest(messages=(("user", "Q" * 300),)), chars, 100)


def test_render_reports_where_cuttable_fields_landed():
    template = Template("t.txt", "<<system>>\nInstruction: {instruction}\nResponse: {response}\n<<user>>\nRate "
                                 "{response}?\n<<assistant>>\nScore: ")
    response = "line one\n<<assistant>>\nline three\n"  # a marker line inside a field stays text
    messages, spans = template.render(cuttable=("response",), instruction="Add.", response=response)
    assert [role for role, _ in messages] == ["system", "user", "assistant"]
    assert [messages[i][1][a:b] for i, a, b in spans] == [response.rstrip("\n"), response]
    assert messages == template.render(instruction="Add.", response=response)
    with pytest.raises(Exception, match="cuttable field"):
        template.render(cuttable=("answer",), instruction="x", response="y")


@pytest.fixture(scope="module")
def tiny():
    return make_backend("local", model="tiny-random-llama", max_length=160, batch_size=4)


def test_local_backend_keeps_the_question_and_prefill(tiny, repo_root):
    template = load_template(repo_root / "prompts/alpagasus_rating_prefill.txt")
    messages, spans = template.render(cuttable=("response",), instruction="Add 2 and 3.", input="",
                                      response="The sum is five. " * 60, dimension="accuracy")
    request = ChatRequest(messages=messages, max_tokens=2, score_tokens=tuple("012345"), cuttable=spans)
    fitted, cut = fit(request, tiny.count, 160)
    assert cut > 0 and tiny.count(fitted) <= 160
    assert fitted.messages[1:] == messages[1:]  # the rating question and "Score: " are whole
    assert tiny.render(fitted).endswith("Score: ") and CUT_MARK in fitted.messages[0][1]
    unmarked = ChatRequest(messages=messages, max_tokens=2)
    (reply, refused), stats = run_requests(tiny, [request, unmarked], None)
    assert reply.status == "ok" and reply.truncated == cut and reply.tokens_in <= 160
    assert refused.status == "error" and "prompt too long" in (refused.error or "")
    assert stats.truncated == 1 and stats.truncated_tokens == cut and stats.errors == 1


def test_local_positions_follow_the_generated_tokens(tiny):
    request = ChatRequest(messages=(("user", "Count: one two"),), max_tokens=4, logprobs=3)
    (reply,), _ = run_requests(tiny, [request], None)
    assert reply.positions is not None and len(reply.positions) == reply.tokens_out
    for token, alternatives in reply.positions:
        assert 0 < len(alternatives) <= 3 and sum(alternatives.values()) <= 1 + 1e-6
        assert max(alternatives, key=alternatives.get) == token  # greedy: the chosen token is the likeliest
    (first,), _ = run_requests(tiny, [ChatRequest(messages=request.messages, max_tokens=0, logprobs=2)], None)
    assert first.text == "" and len(first.positions or []) == 1 and first.positions[0][0] == reply.positions[0][0]
