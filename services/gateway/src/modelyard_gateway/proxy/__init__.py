"""The OpenAI-compatible API: routing client requests to instances with failover."""
