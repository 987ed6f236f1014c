"""Reports: the inventory exported and imported (JSON, CSV), a system's AI Act register (PDF)."""
