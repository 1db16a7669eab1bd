"""What memcgctl does to groups, written once over the backend interface:
create, delete and attach (groups), limits, shrink and empty, figures (stats).
Never prints; results and reasons are values."""
