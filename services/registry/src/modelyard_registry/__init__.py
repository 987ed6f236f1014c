"""Modelyard registry: AI models, AI systems and the links between them."""
