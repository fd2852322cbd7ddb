"""Stage score: the AlpaGasus grader rates every pool row 0-5 -> data/scores/scores.parquet.

    dvc repro score        # runs: python stages/score.py
    ift-select stage score   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("score")
