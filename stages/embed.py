"""Stage embed: sentence embeddings of every pool row -> data/embeddings/.

    dvc repro embed        # runs: python stages/embed.py
    ift-select stage embed   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("embed")
