"""AI Act record: risk justification, obligations per system, evidence items."""

from modelyard_common.migration_env.changes import (
    add_columns,
    create_index,
    create_table,
    migration,
)

revision: str = "0004"
down_revision: str | None = "0003"

upgrade, downgrade = migration(
    add_columns("registry.ai_systems", risk_justification="text NOT NULL DEFAULT ''"),
    create_table(
        "registry.evidence",
        """
        id uuid PRIMARY KEY,
        workspace varchar(100) NOT NULL,
        type varchar(32) NOT NULL,
        title varchar(200) NOT NULL,
        url varchar(2000),
        owner varchar(200) NOT NULL DEFAULT '',
        expires_on date,
        system_id uuid REFERENCES registry.ai_systems (id) ON DELETE SET NULL,
        model_id uuid REFERENCES registry.ai_models (id) ON DELETE SET NULL,
        file_name varchar(255),
        file_size bigint,
        file_sha256 varchar(64),
        content_type varchar(200),
        file_content bytea,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by varchar(200) NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by varchar(200) NOT NULL,
        revision integer NOT NULL DEFAULT 1
        """,
    ),
    create_index("ix_evidence_page_created", "registry.evidence", "workspace, created_at, id"),
    create_index("ix_evidence_expires", "registry.evidence", "workspace, expires_on, id"),
    create_table(
        "registry.system_obligations",
        """
        system_id uuid NOT NULL REFERENCES registry.ai_systems (id) ON DELETE CASCADE,
        code varchar(64) NOT NULL,
        workspace varchar(100) NOT NULL,
        status varchar(16) NOT NULL,
        owner varchar(200) NOT NULL DEFAULT '',
        evidence_id uuid REFERENCES registry.evidence (id) ON DELETE SET NULL,
        note text NOT NULL DEFAULT '',
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by varchar(200) NOT NULL,
        revision integer NOT NULL DEFAULT 1,
        PRIMARY KEY (system_id, code)
        """,
    ),
)
