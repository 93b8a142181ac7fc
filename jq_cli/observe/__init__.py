"""Observability: Redis telemetry, Prometheus metrics, tracing, daemon logs and sd_notify."""
