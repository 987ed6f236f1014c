"""Encryption at rest of cloud tokens and proxy passwords, and hashing of client API keys."""

from __future__ import annotations

import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken

KEY_PREFIX = "sk-my-"


class SecretBox:
    """Encrypts and decrypts secrets with one Fernet key from the environment."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, plaintext: str) -> str:
        """Return the ciphertext of `plaintext` (urlsafe text)."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        """Return the plaintext of a sealed secret; raise ValueError on a wrong key."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured key") from exc


def new_api_key() -> str:
    """Return a fresh client API key (shown once to its creator)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Return the stored form of an API key (SHA-256 hex; keys are high-entropy)."""
    return hashlib.sha256(key.encode()).hexdigest()
