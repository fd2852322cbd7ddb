"""Stage train@<arm>: fine-tune the base model on one arm's selection -> models/<arm>/ (+ lineage.json).

    dvc repro train@alpagasus        # runs: python stages/train.py alpagasus
    ift-select stage train alpagasus   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("train")
