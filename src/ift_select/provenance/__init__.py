"""Provenance: what DVC records about stages, MLflow tracking, model lineage (every stage)."""
