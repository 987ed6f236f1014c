"""Modelyard gateway: one OpenAI-compatible endpoint with failover across grouped backends."""
