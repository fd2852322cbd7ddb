"""ift-select: instruction-tuning data selection (AlpaGasus, CaR) with judged evaluation."""

__version__ = "0.1.0"
