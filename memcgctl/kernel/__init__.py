"""The kernel-facing layer: the files of one cgroup root (fs), the changes as
data (actions), the rules of group names (names), finding the memory
hierarchy (discovery), and the v1 and v2 backends behind one interface
(backend).  Only fs opens files; only fs turns OSError into memcgctl errors
(fake, which lays out init-fake's files, does it with fs's own openers and
errors)."""
