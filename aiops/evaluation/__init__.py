"""Backtests: replay series through detectors, NAB scoring, reports and plots."""
