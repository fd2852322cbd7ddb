"""The report leads with the verdict on the judge: figures of an unqualified judge are never a finding."""

from __future__ import annotations

from ift_select.evaluation.metrics import summarize
from ift_select.reporting.sections_eval import agreement_section, judging_section
from ift_select.reporting.sections_qualify import qualification_section
from test_report import make_inputs, qualify_json as _qualify

def _blocks_text(blocks) -> str:
    from ift_select.reporting.render import to_markdown

    return to_markdown("t", blocks, "figures")


def _judged(tmp_path):
    import pandas as pd

    make_inputs(tmp_path, with_agreement=False)
    frame = pd.read_parquet(tmp_path / "pair.parquet")
    return frame, {"alpagasus_vs_full": summarize(frame, bootstrap=100)}


def test_qualified_judge_figures_are_findings_with_intervals(tmp_path):
    frame, summaries = _judged(tmp_path)
    blocks, summary, status = qualification_section(_qualify(True))
    assert "Qualified. The judge" in _blocks_text(blocks) and status.evidence(frame)
    md = _blocks_text(judging_section(summaries, tmp_path, {"alpagasus_vs_full": status.evidence(frame)}))
    assert "not evidence" not in md.lower()
    table = md[md.index("| pair (a vs b) |"):].splitlines()
    assert "flip rate" in table[0] and "longer-answer share" in table[0] and "QS [95% CI]" in table[0]
    assert all(row.count("[") >= 3 for row in table[2:4])  # WS, WR and QS with intervals
    assert summary == {"qualified": True, "agreement_non_tie": 0.9, "baseline_longer": 0.54, "kappa": 0.3,
                       "flip_rate": 0.2}
    assert "LC win rate [95% CI]" in md


def test_a_qualification_of_another_judge_or_none_does_not_count(tmp_path):
    frame, _ = _judged(tmp_path)
    _, _, other = qualification_section(_qualify(True, judge="local:smollm2-135m-instruct|prompt:ffffffffffff"))
    assert other.qualified and not other.evidence(frame)  # the judgments came from another prompt
    assert not qualification_section(_qualify(True) | {"decision": "debiased"})[2].evidence(frame)
    blocks, summary, status = qualification_section(None)
    assert "was not qualified in this run" in _blocks_text(blocks) and not status.evidence(frame)
    assert summary == {"qualified": None}
    reference = frame.assign(model_b="reference", judge="local:smollm2-135m-instruct|prompt:5555aaaa5555")
    assert qualification_section(_qualify(True))[2].evidence(reference)  # its own prompt: same backend suffices


def test_agreement_section_shows_the_pipelines_own_human_measurement(tmp_path):
    blocks, summary = agreement_section(None, "local:x", _qualify(True, human=True))
    md = _blocks_text(blocks)
    assert "Measured in this run by the qualify_judge stage" in md and "pandalm (999 pairs" in md
    assert "| longer response wins (pandalm) | non-tie pairs | 67.0% |" in md
    assert summary["n"] == 999 and summary["agreement_non_tie"] == 0.7
    assert "ift-select judge agreement" in _blocks_text(agreement_section(None, "local:x", _qualify(True))[0])
