"""Model approval: review requested by one person, decided by another (four-eyes)."""
