"""Idempotency records of device registrations no longer hold the device token."""

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    # Earlier versions stored the whole first answer, token included; a replay now answers the
    # token as null. Running this twice changes nothing more.
    op.execute(
        "UPDATE deployer.idempotency_keys SET body = jsonb_set(body, '{token}', 'null'::jsonb) "
        "WHERE operation = 'create_device' AND body ? 'token' "
        "AND body->'token' <> 'null'::jsonb"
    )


def downgrade() -> None:
    # The tokens are gone for good (only their hashes are kept, on the devices).
    pass
