"""Helpers shared by tests: fault injection and process launchers."""
