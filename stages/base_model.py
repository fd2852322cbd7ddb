"""Stage base_model: params base_model as a Hugging Face directory -> models/base.

    dvc repro base_model        # runs: python stages/base_model.py
    ift-select stage base_model   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("base_model")
