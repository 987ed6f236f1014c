"""Client API keys: what OpenAI clients send as `Authorization: Bearer sk-...`."""
