"""The report: Markdown/HTML, figures, DVC plot data (the report stage)."""
