"""Metrics, drift comparison and report rendering."""

from segedge.report.metrics import ConfusionMatrix

__all__ = ["ConfusionMatrix"]
