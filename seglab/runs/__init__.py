"""Run directories and what they record: events, comparisons, curves, reproduction and the
environment."""
