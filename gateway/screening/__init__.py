"""Misalignment screening: scenarios, runner, classifier, statistics, and the reports
that decide which tiers a model may serve."""
