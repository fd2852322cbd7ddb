"""Stage qualify_pairs@<name>: the graders on a labelled file (qualify_grader.pairs.<name>)
-> metrics/qualify_pairs_<name>.json.

    dvc repro qualify_pairs@car_valid        # runs: python stages/qualify_pairs.py car_valid
    ift-select stage qualify_pairs car_valid   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("qualify_pairs")
