"""memcgctl daemon: background reclaim driven by kernel notifiers, the
configuration (config), the policies (policies/), the loop (engine), which
groups the rules name (matching), how fast it goes at them (pacing)."""
