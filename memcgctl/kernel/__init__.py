"""The kernel-facing layer: the files of one cgroup root (fs), finding the
memory hierarchy (discovery), and the v1 and v2 backends behind one interface
(backend).  Only fs opens files; only fs turns OSError into memcgctl errors."""
