"""Observability: metrics, the HTTP endpoints, logging setup."""
