"""Metrics accumulated over whole splits: confusion-matrix scores and boundary scores."""
