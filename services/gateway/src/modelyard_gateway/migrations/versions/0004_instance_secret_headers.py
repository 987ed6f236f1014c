"""Instances keep secret headers sealed (write-only), next to their token."""

from modelyard_common.migration_env.changes import add_columns, migration

revision: str = "0004"
down_revision: str | None = "0003"

upgrade, downgrade = migration(
    add_columns(
        "gateway.model_instances",
        # One Fernet ciphertext of the {name: value} map; the names alone are shown to readers.
        secret_headers_sealed="text",
        secret_header_names="jsonb NOT NULL DEFAULT '[]'::jsonb",
    ),
)
