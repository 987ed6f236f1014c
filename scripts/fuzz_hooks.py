"""schemathesis hooks of `make fuzz` (loaded through SCHEMATHESIS_HOOKS by scripts/fuzz.py)."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis
from schemathesis.generation import GenerationMode


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """Give each schema-valid create its own Idempotency-Key.

    Generated keys repeat ("0", "") across cases with different bodies, and a key reused with
    another body is rightly a 422 (IETF idempotency-key draft), which no schema can express. Key
    reuse has its own tests; the fuzzer still sends invalid keys in negative cases.
    """
    headers = case.headers or {}
    positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    if positive and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = str(uuid.uuid4())
