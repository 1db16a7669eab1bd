"""memcgctl daemon: background reclaim driven by kernel notifiers, the
configuration (config), the policies (policies/), the loop (engine)."""
