"""Stage generate@<arm>: the arm's model answers every test set -> data/generations/<arm>.parquet.

    dvc repro generate@alpagasus        # runs: python stages/generate.py alpagasus
    ift-select stage generate alpagasus   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("generate")
