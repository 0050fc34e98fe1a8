"""Post-session analysis: read event logs, rebuild sessions, explain every end, report.

Depends on `openfrp.codes` and `openfrp.events` only, so it runs anywhere a log can be copied.
"""
