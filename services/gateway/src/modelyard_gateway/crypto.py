"""Encryption at rest of instance secrets (MultiFernet: rotatable keys) and API key hashing."""

from __future__ import annotations

import hashlib
import json
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

KEY_PREFIX = "sk-my-"


class SecretBox:
    """Seals with the first configured Fernet key; opens with any of them.

    `keys` is one key or several, comma-separated, newest first: rotating means putting a new
    key in front, re-sealing the stored secrets (`modelyard-gateway reseal`), then dropping the
    old key.
    """

    def __init__(self, keys: str) -> None:
        parsed = [key.strip() for key in keys.split(",") if key.strip()]
        if not parsed:
            raise ValueError("no encryption key is configured")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in parsed])
        except ValueError as exc:
            raise ValueError(
                "an encryption key is not a Fernet key (32 urlsafe-base64 bytes)"
            ) from exc
        self._primary = Fernet(parsed[0].encode())

    def seal(self, plaintext: str) -> str:
        """Return the ciphertext of `plaintext` (urlsafe text) under the newest key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        """Return the plaintext of a sealed secret; raise ValueError if no key opens it."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc

    def reseal(self, ciphertext: str) -> str:
        """Return the same secret sealed under the newest key (ValueError if none opens it)."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc

    def is_current(self, ciphertext: str) -> bool:
        """Return whether a sealed secret is already under the newest key."""
        try:
            self._primary.decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True

    def seal_headers(self, headers: dict[str, str]) -> str:
        """Return one ciphertext holding a map of header names to values."""
        return self.seal(json.dumps(headers, sort_keys=True))

    def open_headers(self, ciphertext: str) -> dict[str, str]:
        """Return the header map of `seal_headers`."""
        opened = json.loads(self.open(ciphertext))
        if not isinstance(opened, dict):
            raise ValueError("sealed headers are not a map")
        return {str(name): str(value) for name, value in opened.items()}


def new_api_key() -> str:
    """Return a fresh client API key (shown once to its creator)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Return the stored form of an API key (SHA-256 hex; keys are high-entropy)."""
    return hashlib.sha256(key.encode()).hexdigest()
