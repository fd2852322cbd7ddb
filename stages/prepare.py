"""Stage prepare: load, validate and de-duplicate the pool -> data/prepared/pool.parquet.

    dvc repro prepare        # runs: python stages/prepare.py
    ift-select stage prepare   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("prepare")
