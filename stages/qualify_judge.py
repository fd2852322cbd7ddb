"""Stage qualify_judge: the configured judge on labelled pairs (both orders) -> metrics/qualify.json.

    dvc repro qualify_judge                  # runs: python stages/qualify_judge.py
    ift-select stage qualify_judge           # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("qualify_judge")
