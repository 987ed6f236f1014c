"""${message}"""

% if upgrades:
import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
% else:
from modelyard_common.migration_env.changes import migration
% endif

revision: str = "${up_revision}"
down_revision: str | None = ${'"%s"' % down_revision if isinstance(down_revision, str) else repr(down_revision)}
% if branch_labels:
branch_labels = ${repr(branch_labels)}
% endif
% if depends_on:
depends_on = ${repr(depends_on)}
% endif

% if upgrades:

def upgrade() -> None:
    ${upgrades}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
% else:
# Each change declared once, undone by the downgrade (modelyard_common.migration_env.changes):
# add_columns("<schema>.<table>", <name>="<type>"), create_table("<schema>.<table>", "<columns>"),
# create_index("<name>", "<schema>.<table>", "<columns>"), sql("<statement>", "<its undoing>").
upgrade, downgrade = migration()
% endif
