"""The obligations Regulation (EU) 2024/1689 (the AI Act) puts on a system, by risk and role.

Each entry cites the article it comes from. `required` items block `in_use` for a high-risk
system until they are done; the others are tracked but do not block. The table is a working
checklist for governance teams, not legal advice: it covers the obligations a provider or a
deployer of a system carries in their own name, not those of importers, distributors or
providers of general-purpose AI models (Chapter V).
"""

from __future__ import annotations

from dataclasses import dataclass

PROVIDER, DEPLOYER = "provider", "deployer"


@dataclass(frozen=True)
class Obligation:
    code: str
    article: str
    title: str
    risk_levels: frozenset[str]
    roles: frozenset[str]
    required: bool


def _o(code: str, article: str, title: str, risks: str, roles: str, required: bool) -> Obligation:
    return Obligation(
        code, article, title, frozenset(risks.split()), frozenset(roles.split()), required
    )


ALL = "unacceptable high limited minimal"
CATALOGUE: tuple[Obligation, ...] = (
    _o(
        "prohibited_practice",
        "Art. 5",
        "Prohibited practice: the system must not be placed on "
        "the market, put into service or used",
        "unacceptable",
        "provider deployer",
        True,
    ),
    _o(
        "ai_literacy",
        "Art. 4",
        "AI literacy of staff and of others operating the system",
        ALL,
        "provider deployer",
        False,
    ),
    # High-risk: provider (Chapter III, Section 2 and 3).
    _o(
        "risk_management",
        "Art. 9",
        "Risk management system over the whole lifecycle",
        "high",
        "provider",
        True,
    ),
    _o(
        "data_governance",
        "Art. 10",
        "Data and data governance of training, validation and test sets",
        "high",
        "provider",
        True,
    ),
    _o(
        "technical_documentation",
        "Art. 11, Annex IV",
        "Technical documentation",
        "high",
        "provider",
        True,
    ),
    _o(
        "record_keeping",
        "Art. 12",
        "Automatic recording of events (logs)",
        "high",
        "provider",
        True,
    ),
    _o(
        "instructions_for_use",
        "Art. 13",
        "Transparency and instructions for use for deployers",
        "high",
        "provider",
        True,
    ),
    _o(
        "human_oversight_design",
        "Art. 14",
        "Designed for effective human oversight",
        "high",
        "provider",
        True,
    ),
    _o(
        "accuracy_robustness",
        "Art. 15",
        "Accuracy, robustness and cybersecurity",
        "high",
        "provider",
        True,
    ),
    _o("quality_management", "Art. 17", "Quality management system", "high", "provider", True),
    _o("conformity_assessment", "Art. 43", "Conformity assessment", "high", "provider", True),
    _o(
        "declaration_of_conformity",
        "Art. 47, Art. 48",
        "EU declaration of conformity and CE marking",
        "high",
        "provider",
        True,
    ),
    _o(
        "eu_database_registration",
        "Art. 49",
        "Registration in the EU database",
        "high",
        "provider",
        True,
    ),
    _o(
        "post_market_monitoring", "Art. 72", "Post-market monitoring plan", "high", "provider", True
    ),
    _o(
        "serious_incident_reporting",
        "Art. 73",
        "Serious incident reporting procedure",
        "high",
        "provider deployer",
        False,
    ),
    # High-risk: deployer (Art. 26, Art. 27).
    _o(
        "use_per_instructions",
        "Art. 26(1)",
        "Use in accordance with the provider's instructions for use",
        "high",
        "deployer",
        True,
    ),
    _o(
        "human_oversight_assigned",
        "Art. 26(2)",
        "Human oversight assigned to competent, trained people",
        "high",
        "deployer",
        True,
    ),
    _o(
        "input_data_relevance",
        "Art. 26(4)",
        "Input data relevant and representative for the intended purpose",
        "high",
        "deployer",
        False,
    ),
    _o(
        "monitoring_and_logs",
        "Art. 26(5), Art. 26(6)",
        "Monitor operation; keep the logs at least six months",
        "high",
        "deployer",
        True,
    ),
    _o(
        "inform_workers",
        "Art. 26(7)",
        "Inform workers' representatives before use at the workplace",
        "high",
        "deployer",
        False,
    ),
    _o(
        "inform_affected_persons",
        "Art. 26(11)",
        "Inform people that decisions about them are made or assisted by the system",
        "high",
        "deployer",
        False,
    ),
    _o(
        "dpia",
        "Art. 26(9)",
        "Data protection impact assessment (GDPR Art. 35) where personal data is processed",
        "high",
        "deployer",
        False,
    ),
    _o(
        "fria",
        "Art. 27",
        "Fundamental rights impact assessment before first use",
        "high",
        "deployer",
        True,
    ),
    # Limited risk: transparency (Art. 50).
    _o(
        "disclose_ai_interaction",
        "Art. 50(1)",
        "People are told they are interacting with an AI system",
        "limited high",
        "provider",
        False,
    ),
    _o(
        "mark_synthetic_content",
        "Art. 50(2)",
        "Synthetic audio, image, video or text is marked machine-readably",
        "limited high",
        "provider",
        False,
    ),
    _o(
        "disclose_emotion_biometric",
        "Art. 50(3)",
        "People exposed to emotion recognition or biometric categorisation are informed",
        "limited high",
        "deployer",
        False,
    ),
    _o(
        "disclose_deep_fakes",
        "Art. 50(4)",
        "Deep fakes and AI-generated public-interest text are disclosed",
        "limited high",
        "deployer",
        False,
    ),
    # Minimal risk: voluntary.
    _o(
        "voluntary_code_of_conduct",
        "Art. 95",
        "Voluntary code of conduct (optional)",
        "minimal",
        "provider deployer",
        False,
    ),
)
BY_CODE = {o.code: o for o in CATALOGUE}


def roles_of(ai_act_role: str) -> set[str]:
    """Return the roles a system's `ai_act_role` stands for (`both` is provider and deployer)."""
    return {PROVIDER, DEPLOYER} if ai_act_role == "both" else {ai_act_role}


def obligations_for(risk_level: str, ai_act_role: str) -> list[Obligation]:
    """Return the obligations of a system with this risk level and AI Act role, in order."""
    roles = roles_of(ai_act_role)
    return [o for o in CATALOGUE if risk_level in o.risk_levels and o.roles & roles]
