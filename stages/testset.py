"""Stage testset@<name>: load and validate one test set -> data/prepared/tests/<name>.parquet.

    dvc repro testset@sample        # runs: python stages/testset.py sample
    ift-select stage testset sample   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("testset")
