"""Graders: the AlpaGasus LLM grader, IQS, and their qualification (the score stage)."""
