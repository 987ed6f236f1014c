"""The config file: named contexts (service URLs, workspace, credentials), kept with mode 600.

Location: $MODELYARD_CONFIG, else $XDG_CONFIG_HOME/modelyard/config.yaml (~/.config/...).
Environment variables override the chosen context field by field: MODELYARD_REGISTRY_URL,
MODELYARD_DEPLOYER_URL, MODELYARD_GATEWAY_URL, MODELYARD_TOKEN, MODELYARD_GATEWAY_KEY.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULTS = {
    "registry_url": "http://127.0.0.1:8001",
    "deployer_url": "http://127.0.0.1:8002",
    "gateway_url": "http://127.0.0.1:8000",
}
ENV_OVERRIDES = {
    "registry_url": "MODELYARD_REGISTRY_URL",
    "deployer_url": "MODELYARD_DEPLOYER_URL",
    "gateway_url": "MODELYARD_GATEWAY_URL",
    "token": "MODELYARD_TOKEN",
    "gateway_key": "MODELYARD_GATEWAY_KEY",
}
SECRET_FIELDS = ("token", "gateway_key", "refresh_token")


class UsageProblem(Exception):
    """Bad usage the CLI reports with exit code 2 (an unknown context, an unreadable file)."""


def config_path() -> Path:
    """Return where the config file lives."""
    explicit = os.environ.get("MODELYARD_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "modelyard" / "config.yaml"


@dataclass
class Config:
    """The whole config file."""

    current_context: str | None = None
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path = field(default_factory=config_path)

    @classmethod
    def load(cls) -> Config:
        """Return the config file's content (empty when there is none)."""
        path = config_path()
        if not path.exists():
            return cls(path=path)
        import yaml

        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UsageProblem(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("contexts", {}), dict):
            raise UsageProblem(f"{path} is not a modelyard config file")
        return cls(
            current_context=raw.get("current_context"),
            contexts={str(k): dict(v or {}) for k, v in (raw.get("contexts") or {}).items()},
            path=path,
        )

    def save(self) -> None:
        """Write the file, readable by its owner only (it holds tokens)."""
        import yaml

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = yaml.safe_dump(
            {"current_context": self.current_context, "contexts": self.contexts},
            sort_keys=False,
        )
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.replace(temporary, self.path)

    def resolve(self, name: str | None) -> tuple[str, dict[str, Any]]:
        """Return the context to use: `name`, else $MODELYARD_CONTEXT, else the current one.

        A context asked for by name must exist; without any, an implicit one (the defaults and
        the environment) is used.
        """
        wanted = name or os.environ.get("MODELYARD_CONTEXT")
        if wanted:
            if wanted not in self.contexts:
                known = ", ".join(sorted(self.contexts)) or "none"
                raise UsageProblem(
                    f"no context named {wanted!r} in {self.path} (known: {known}); "
                    f"create it with `modelyard login --context {wanted} ...`"
                )
            chosen = wanted
        else:
            chosen = self.current_context or "default"
        values = {**DEFAULTS, **self.contexts.get(chosen, {})}
        for key, variable in ENV_OVERRIDES.items():
            if os.environ.get(variable):
                values[key] = os.environ[variable]
        return chosen, values
