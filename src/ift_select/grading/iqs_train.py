"""``ift-select iqs train``: fit an IQS model with the chosen method (``probe`` or ``finetune``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ift_select.grading.iqs import DEFAULT_ENCODER
from ift_select.grading.iqs_data import TrainSettings


def train_iqs(labels_csv: str | Path, valid_csv: str | Path, encoder: str | None = None, out_dir: str | Path = "models/iqs",
              settings: TrainSettings | None = None, **overrides: Any) -> dict[str, Any]:
    """Train an IQS model into ``out_dir`` with ``settings.method`` (probe: ``iqs_probe``, finetune:
    ``iqs_finetune``); ``overrides`` replace fields of ``settings``. Returns the run's figures."""
    cfg = dataclasses.replace(settings or TrainSettings(), **overrides)
    encoder = encoder or DEFAULT_ENCODER[cfg.method]
    if cfg.method == "probe":
        from ift_select.grading.iqs_probe import fit_probe

        return fit_probe(labels_csv, valid_csv, encoder, out_dir, cfg)
    from ift_select.grading.iqs_finetune import finetune

    return finetune(labels_csv, valid_csv, encoder, out_dir, cfg)
