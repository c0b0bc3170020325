"""Scenario files, one per scenario; installed as the ``fuzzrmap.scenarios`` package."""
