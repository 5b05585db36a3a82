"""Monitoring: drift of live traffic against the champion's training set, and the telemetry /metrics exports."""
