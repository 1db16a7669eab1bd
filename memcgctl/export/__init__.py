"""Prometheus export: the figures of the groups as metrics.

Imported only by `memcgctl export`: prometheus_client is loaded on that path
alone (tests/test_fast_paths.py keeps stat and limit without it).
"""
