"""Supervised fine-tuning and generation with the Alpaca template (the train and generate stages)."""
