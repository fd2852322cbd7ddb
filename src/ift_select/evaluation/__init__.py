"""Pairwise judging, its metrics, and judge qualification (the judge and qualify stages)."""
