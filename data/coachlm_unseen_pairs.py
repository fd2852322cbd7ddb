"""Write CoachLM's expert-revised Alpaca pairs that CaR's IQS never saw as a CaR-format pairs CSV (src, pos, neg).

    python data/coachlm_unseen_pairs.py --out /tmp/coachlm_unseen.csv
    ift-select iqs eval --model models/iqs --pairs /tmp/coachlm_unseen.csv      # IQS on pairs it never trained on
    ift-select grade agreement --pairs /tmp/coachlm_unseen.csv                 # the configured grader, beside length

CaR's expert labels (../shared/data/car_expert_revised_*) are a subset of CoachLM's 2,301 revisions
(../shared/data/coachlm_expert_revision). A pair is kept when neither its raw nor its revised instruction appears
(case, spacing and punctuation ignored) in any of CaR's train or valid files, the expert left the instruction and
input as they were, and the expert changed the response: pos is the revised response, neg the raw one. Every
dropped pair is counted by reason in the JSON line printed at the end.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

from ift_select.core.io import write_with
from ift_select.data.car_text import RESPONSE, join_src, split_src

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COACHLM = SHARED / "coachlm_expert_revision" / "expert_revision_dataset.json"
CAR_FILES = [SHARED / "car_expert_revised_pairs" / f"APE_{split}.csv" for split in ("train", "valid")] + [
    SHARED / "car_expert_revised_scores" / f"APE_score_{split}.csv" for split in ("train", "valid")]


def key(text: str) -> str:
    return " ".join(re.sub(r"\W+", " ", str(text)).lower().split())


def car_instructions() -> set[str]:
    """Every instruction in CaR's train and valid files (the src column: "Instruction: ... [Input: ...]")."""
    seen: set[str] = set()
    for path in CAR_FILES:
        for src in pd.read_csv(path, keep_default_na=False)["src"]:
            parts = split_src(src)
            seen.add(key(parts[0] if parts else src))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for path in [COACHLM, *CAR_FILES]:
        if not path.exists():
            raise SystemExit(f"missing {path} (see ../shared/data/SOURCES.md)")
    coachlm = pd.DataFrame(json.loads(COACHLM.read_text(encoding="utf-8"))).fillna("").astype(str)
    seen = car_instructions()
    dropped = {"instruction_in_car": 0, "instruction_or_input_revised": 0, "response_unchanged": 0}
    kept = []
    columns = [f"{kind} {field}" for kind in ("Raw", "Revised") for field in ("Instruction", "Input", "Response")]
    for row in coachlm[columns].itertuples(index=False):
        raw_instruction, raw_input, raw_response, new_instruction, new_input, new_response = row
        if key(raw_instruction) in seen or key(new_instruction) in seen:
            dropped["instruction_in_car"] += 1
        elif key(raw_instruction) != key(new_instruction) or key(raw_input) != key(new_input):
            dropped["instruction_or_input_revised"] += 1
        elif new_response.strip() == raw_response.strip():
            dropped["response_unchanged"] += 1
        else:
            kept.append({"src": join_src(raw_instruction, raw_input), "pos": f"{RESPONSE}{new_response.strip()}",
                         "neg": f"{RESPONSE}{raw_response.strip()}"})
    pairs = pd.DataFrame(kept, columns=["src", "pos", "neg"])
    write_with(args.out, lambda tmp: pairs.to_csv(tmp, index=False))
    longer = (pairs["pos"].str.len() > pairs["neg"].str.len()).mean() if len(pairs) else float("nan")
    print(json.dumps({"coachlm_rows": len(coachlm), "car_instructions": len(seen), "pairs": len(pairs),
                      "dropped": dropped, "pos_longer_share": round(float(longer), 4), "out": str(args.out)}))


if __name__ == "__main__":
    main()
