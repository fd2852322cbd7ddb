"""Stage judge@<pair>: the judge compares two arms in both orders -> data/judgments/<pair>.parquet.

    dvc repro judge@alpagasus_vs_full        # runs: python stages/judge.py alpagasus_vs_full
    ift-select stage judge alpagasus_vs_full   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("judge")
