"""Stage qualify_grader: the grader's scores against the pool's flaw labels -> metrics/qualify_grader.json.

    dvc repro qualify_grader        # runs: python stages/qualify_grader.py
    ift-select stage qualify_grader   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("qualify_grader")
