"""The house plan is enforced: `make lint`'s import contracts break on a cycle or a layer violation.

Each package's `.importlinter` declares its layers (wiring on top, features below without cycles,
foundation at the bottom). A contract that never breaks would prove nothing, so this test copies
each package's source, adds one import that goes the wrong way, and runs `lint-imports` exactly as
`make lint` does: the copy must break a contract, the untouched tree must keep them all.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIGS = sorted(
    [REPO / "libs/common/.importlinter", *REPO.glob("services/*/.importlinter")],
)


def _root_package(config: Path) -> str:
    parser = configparser.ConfigParser()
    parser.read(config)
    roots = parser["importlinter"].get("root_packages") or parser["importlinter"]["root_package"]
    return roots.split()[0]


def _layers(config: Path) -> list[list[str]]:
    """Return the layers of the config's first layers contract, top first (siblings grouped)."""
    parser = configparser.ConfigParser()
    parser.read(config)
    for section in parser.sections():
        if parser[section].get("type") == "layers":
            rows = [line.strip() for line in parser[section]["layers"].splitlines()]
            return [
                [name.strip().strip("()") for name in row.replace(":", "|").split("|")]
                for row in rows
                if row
            ]
    return []


def _lint(config: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _source_of(package: str) -> Path:
    spec = __import__(package)
    return Path(spec.__file__).parent  # type: ignore[arg-type]


def _wrong_way(config: Path) -> tuple[str, str]:
    """Return (module to edit, module it must not import): the bottom layer importing the top."""
    root = _root_package(config)
    layers = _layers(config)
    if not layers:  # a forbidden contract only (libs/common): common importing a service
        return f"{root}.errors", "modelyard_registry"
    top, bottom = layers[0][0], layers[-1][0]

    def qualified(name: str) -> str:
        return name if name.startswith(root) else f"{root}.{name}"

    return qualified(bottom), qualified(top)


def test_every_service_declares_its_plan() -> None:
    names = {c.parent.name for c in CONFIGS}
    assert {"common", "registry", "deployer", "gateway", "device-agent"} <= names, names
    for config in CONFIGS:
        assert config.parent.joinpath("README.md").exists() or config.parent.name == "common"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.parent.name)
def test_the_tree_keeps_its_contracts(config: Path) -> None:
    result = _lint(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.parent.name)
def test_an_import_the_wrong_way_breaks_a_contract(config: Path, tmp_path: Path) -> None:
    root = _root_package(config)
    edited, target = _wrong_way(config)
    copy = tmp_path / root
    shutil.copytree(_source_of(root), copy, ignore=shutil.ignore_patterns("__pycache__"))
    relative = Path(*edited.split(".")[1:])
    module = copy / relative.with_suffix(".py")
    if not module.exists():
        module = copy / relative / "__init__.py"
    assert module.exists(), f"{edited} is not in {copy}"
    module.write_text(module.read_text() + f"\nimport {target}  # the wrong way\n")

    result = _lint(config, pythonpath=tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert edited in result.stdout, result.stdout
    assert target in result.stdout, result.stdout
