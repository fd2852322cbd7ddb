"""Stage arms: every arm's effective settings -> data/arms/<arm>.json.

    dvc repro arms        # runs: python stages/arms.py
    ift-select stage arms   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("arms")
