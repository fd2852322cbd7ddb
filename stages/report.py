"""Stage report: reports/report.md, report.html, plots, summary.json.

    dvc repro report        # runs: python stages/report.py
    ift-select stage report   # the same entry path from the CLI
"""

from ift_select.core.stage import main

if __name__ == "__main__":
    main("report")
