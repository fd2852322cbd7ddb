"""Stage labelled_pairs@<set>: one labelled pair file (judge.qualify.sets) -> data/prepared/pairs/<set>.parquet.

    dvc repro labelled_pairs@constructed        # runs: python stages/labelled_pairs.py constructed
    ift-select stage labelled_pairs constructed # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("labelled_pairs")
