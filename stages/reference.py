"""Stage reference: the test sets' reference answers as an opponent -> data/generations/reference.parquet.

    dvc repro reference        # runs: python stages/reference.py
    ift-select stage reference   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("reference")
