"""A system's AI Act register as a PDF, laid out with ReportLab's platypus.

Rendering is CPU-bound and blocking: async callers run it in a worker thread
(`reports.service.system_register_pdf`), so the event loop keeps serving other requests.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

_STYLES = getSampleStyleSheet()
# ReportLab keeps process-wide state (this style sheet, its font and glyph caches): one render
# at a time, as when renders ran on the event loop, now without holding the loop.
_RENDERING = threading.Lock()


def _p(text: object, style: str = "BodyText") -> Paragraph:
    # Every value is user input: escape it, or a `<` in a name would be read as markup.
    return Paragraph(escape(str(text if text is not None else "")), _STYLES[style])


def _table(
    header: Sequence[str], rows: Sequence[Sequence[object]], widths: Sequence[float]
) -> Table:
    data = [[_p(h, "Heading6") for h in header]] + [[_p(c) for c in row] for row in rows]
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def render_register(
    *,
    system: dict[str, object],
    models: Sequence[Sequence[object]],
    obligations: Sequence[Sequence[object]],
    evidence: Sequence[Sequence[object]],
    generated_at: datetime,
    generated_by: str,
) -> bytes:
    """Return the PDF bytes of one system's register: its facts, models, obligations, evidence.

    Blocking (seconds for a large register): call it from a worker thread in async code.
    """
    with _RENDERING:
        out = io.BytesIO()
        doc = SimpleDocTemplate(
            out,
            pagesize=A4,
            title=f"AI Act register: {system['name']}",
            author="Modelyard registry",
            leftMargin=15 * mm,
            rightMargin=15 * mm,
        )
        story: list[object] = [
            _p(f"AI Act register: {system['name']}", "Title"),
            _p(
                f"Workspace {system['workspace']}. Generated {generated_at:%Y-%m-%d %H:%M} UTC "
                f"by {generated_by}. Regulation (EU) 2024/1689."
            ),
            Spacer(1, 4 * mm),
            _p("System", "Heading2"),
            _table(
                ["Field", "Value"],
                [
                    (label, system.get(key, ""))
                    for label, key in (
                        ("Purpose", "purpose"),
                        ("Description", "description"),
                        ("Owner", "owner"),
                        ("Status", "status"),
                        ("Risk level", "risk_level"),
                        ("Risk justification", "risk_justification"),
                        ("AI Act role", "ai_act_role"),
                    )
                ],
                [40, 140],
            ),
            _p("Models used", "Heading2"),
            _table(
                ["Model", "Provider", "Learning type", "Approval", "Description of use"],
                models or [("(none)", "", "", "", "")],
                [35, 30, 28, 25, 62],
            ),
            _p("Obligations", "Heading2"),
            _table(
                ["Article", "Obligation", "Required", "Status", "Owner"],
                obligations or [("", "(none at this risk level)", "", "", "")],
                [28, 80, 18, 24, 30],
            ),
            _p("Evidence", "Heading2"),
            _table(
                ["Type", "Title", "Owner", "Expires", "Where"],
                evidence or [("(none)", "", "", "", "")],
                [28, 50, 30, 22, 50],
            ),
        ]
        doc.build(story)
        return out.getvalue()
