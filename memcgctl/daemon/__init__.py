"""The memcgctl daemon: background reclaim by policies (placeholder until the engine lands)."""
