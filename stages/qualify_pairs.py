"""Stage qualify_pairs@<set>: one labelled pair file (judge.qualify.sets) -> data/prepared/pairs/<set>.parquet.

    dvc repro qualify_pairs@constructed        # runs: python stages/qualify_pairs.py constructed
    ift-select stage qualify_pairs constructed # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("qualify_pairs")
