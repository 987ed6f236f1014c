"""Instances keep secret headers sealed (write-only), next to their token.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    # One Fernet ciphertext of the {name: value} map; the names alone are shown to readers.
    op.execute(
        "ALTER TABLE gateway.model_instances ADD COLUMN IF NOT EXISTS secret_headers_sealed text"
    )
    op.execute(
        "ALTER TABLE gateway.model_instances "
        "ADD COLUMN IF NOT EXISTS secret_header_names jsonb NOT NULL DEFAULT '[]'::jsonb"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE gateway.model_instances DROP COLUMN IF EXISTS secret_header_names")
    op.execute("ALTER TABLE gateway.model_instances DROP COLUMN IF EXISTS secret_headers_sealed")
