"""Stage select@<arm>: one arm's training rows -> data/selected/<arm>.parquet.
(Named select_arm.py: a script called select.py would shadow the stdlib module `select`.)

    dvc repro select@alpagasus        # runs: python stages/select_arm.py alpagasus
    ift-select stage select alpagasus   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("select")
