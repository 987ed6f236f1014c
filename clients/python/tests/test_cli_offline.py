"""The CLI's local parts, without services: what a push ships, the config file, exit codes,
retries of the SDK over a local HTTP server, and the OIDC loopback flow's checks.

The CLI and services together are tested in tests/test_cli.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelyard_cli.config import Config, UsageProblem
from modelyard_cli.project import project_files, read_manifest, zip_project
from modelyard_client import ApiError, Endpoints, Modelyard, RetryPolicy
from modelyard_client import operations as ops

CLI = str(Path(sys.executable).parent / "modelyard")


def run(*args: str, config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with its own config file."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    return subprocess.run(
        [CLI, *args],
        env={**clean, "MODELYARD_CONFIG": str(config), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_push_ships_what_the_ignore_file_leaves(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "weights").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "__pycache__").mkdir()
    for name in ("main.py", "weights/model.safetensors", "weights/notes.md", "secret.env",
                 ".git/config", "__pycache__/main.cpython-311.pyc", "run.log"):  # fmt: skip
        (root / name).write_text(name)
    (root / "modelyard.yaml").write_text("main: main.py\nport: 8080\n")
    (root / ".modelyardignore").write_text("secret.env\n*.log\nweights/*.md\n!run.log\n")
    (root / "link.py").symlink_to(root / "main.py")

    shipped = [p.as_posix() for p in project_files(root)]
    assert shipped == [".modelyardignore", "main.py", "modelyard.yaml", "run.log",
                       "weights/model.safetensors"]  # fmt: skip
    archive = tmp_path / "p.zip"
    assert zip_project(root, archive) == 5
    with zipfile.ZipFile(archive) as z:
        infos = {i.filename: i for i in z.infolist()}
    assert infos["weights/model.safetensors"].compress_type == zipfile.ZIP_STORED
    assert infos["main.py"].compress_type == zipfile.ZIP_DEFLATED
    assert read_manifest(root) == {"main": "main.py", "port": 8080}
    assert read_manifest(archive) == {"main": "main.py", "port": 8080}

    (root / "modelyard.yaml").write_text("- not\n- a mapping\n")
    with pytest.raises(UsageProblem, match="must hold a mapping"):
        read_manifest(root)


def test_config_is_private_and_contexts_resolve(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "cfg" / "config.yaml"
    monkeypatch.setenv("MODELYARD_CONFIG", str(path))
    for variable in ("MODELYARD_CONTEXT", "MODELYARD_REGISTRY_URL", "MODELYARD_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    path.parent.mkdir()
    path.write_text("")
    path.chmod(0o644)  # an existing, too open file is tightened on save
    config = Config.load()
    config.contexts["prod"] = {"registry_url": "https://registry.example", "token": "t"}
    config.current_context = "prod"
    config.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    name, values = Config.load().resolve(None)
    assert (name, values["registry_url"], values["token"]) == (
        "prod",
        "https://registry.example",
        "t",
    )
    assert values["deployer_url"] == "http://127.0.0.1:8002"  # a default fills the gap
    monkeypatch.setenv("MODELYARD_REGISTRY_URL", "http://elsewhere:1")
    assert Config.load().resolve("prod")[1]["registry_url"] == "http://elsewhere:1"
    with pytest.raises(UsageProblem, match="no context named 'dev'.*known: prod"):
        Config.load().resolve("dev")


def test_exit_codes_for_usage_and_unreachable_services(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    assert run("--help", config=config).returncode == 0
    usage = run("models", "list", "--limit", "many", config=config)
    assert usage.returncode == 2
    assert "many" in usage.stderr
    missing = run("--context", "nope", "devices", config=config)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no context named 'nope'")
    down = run("devices", config=config, MODELYARD_DEPLOYER_URL="http://127.0.0.1:9")
    assert down.returncode == 1
    assert down.stderr.startswith("error: cannot reach http://127.0.0.1:9/v1/devices")
    assert "Traceback" not in down.stderr + usage.stderr + missing.stderr
    both = run("login", "--token", "t", "--dev", config=config)
    assert both.returncode == 2
    assert not config.exists()  # nothing written by a refused command


def test_dev_token_prints_a_token_the_services_accept(tmp_path: Path) -> None:
    from modelyard_common.auth import decode_token

    secret = "offline-test-secret-of-enough-length"
    argv = ["dev-token", "--sub", "alice", "--role", "editor", "--role", "viewer"]
    done = run(*argv, "--workspace", "acme", config=tmp_path / "c", MODELYARD_JWT_SECRET=secret)
    assert done.returncode == 0, done.stderr
    principal = decode_token(done.stdout.strip(), secret=secret)
    assert (principal.sub, principal.workspace, principal.roles) == (
        "alice", "acme", frozenset({"editor", "viewer"}),
    )  # fmt: skip
    bad = run(
        "dev-token", "--sub", "a", "--role", "root", "--workspace", "w", config=tmp_path / "c"
    )
    assert bad.returncode == 2


class Flaky(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests of each path, then 201/200."""

    failures = 2
    seen: dict[str, list[str | None]] = {}  # noqa: RUF012

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        keys = self.seen.setdefault(f"{self.command} {self.path}", [])
        keys.append(self.headers.get("idempotency-key"))
        if len(keys) <= self.failures:
            body = json.dumps({"type": "about:blank", "title": "Service Unavailable",
                               "status": 503, "detail": "warming up"}).encode()  # fmt: skip
            self.send_response(503)
            self.send_header("content-type", "application/problem+json")
        else:
            body = json.dumps({"id": "m1", "name": "x", "etag": "e"}).encode()
            self.send_response(201 if self.command == "POST" else 200)
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def flaky() -> Iterator[str]:
    """Return the URL of a server that fails twice per path before answering."""
    Flaky.seen = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_idempotent_calls_are_retried_with_one_key_actions_are_not(flaky: str) -> None:
    endpoints = Endpoints(registry_url=flaky, deployer_url=flaky, gateway_url=flaky, token="t")
    with Modelyard(endpoints, retry=RetryPolicy(attempts=4, backoff_s=0.01)) as my:
        created = my.send(ops.create_registry("models", {"name": "x"}))
        assert created["id"] == "m1"
        keys = Flaky.seen["POST /v1/models"]
        assert len(keys) == 3
        assert keys[0] is not None
        assert len(set(keys)) == 1  # the same Idempotency-Key on every try
        assert my.send(ops.get_model("m1"))["id"] == "m1"
        assert len(Flaky.seen["GET /v1/models/m1"]) == 3

        with pytest.raises(ApiError) as refused:
            my.send(ops.archive_registry("models", "m1"))
        assert len(Flaky.seen["POST /v1/models/m1/archive"]) == 1  # an action: no retry
        assert refused.value.status == 503
        assert refused.value.problem["detail"] == "warming up"
        assert refused.value.one_line() == "503 Service Unavailable: warming up"

    with Modelyard(endpoints, retry=RetryPolicy(attempts=2, backoff_s=0.01)) as my:
        with pytest.raises(ApiError):
            my.send(ops.get_model("m2"))
        assert len(Flaky.seen["GET /v1/models/m2"]) == 2  # gives up after its attempts


def test_a_problem_prints_as_one_line_with_its_fields() -> None:
    error = ApiError(
        status=422,
        problem={
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "The request is invalid.",
            "errors": [
                {"loc": ["body", "name"], "field": "name", "message": "Field required"},
                {"loc": ["body", "learning_type"], "message": "Input should be 'supervised'"},
            ],
        },
        method="POST",
        url="http://x/v1/models",
    )
    assert error.one_line() == (
        "422 Unprocessable Content: The request is invalid. "
        "(name: Field required; learning_type: Input should be 'supervised')"
    )


def help_examples(text: str) -> tuple[list[str], list[str]]:
    """Return the examples a --help shows (continuation lines joined) and the block's lines."""
    lines = [line.rstrip() for line in text.splitlines()]
    start = next(n for n, line in enumerate(lines) if line.strip() == "Examples:")
    block = [line for line in lines[start + 1 :] if line.strip()]
    found: list[str] = []
    for line in block:
        if found and found[-1].endswith(" \\"):
            found[-1] = f"{found[-1][:-2]} {line.strip()}"
        else:
            assert line.lstrip().startswith("$ "), f"not an example's first line: {line!r}"
            found.append(line.lstrip()[2:])
    return found, block


def command_paths() -> Iterator[tuple[list[str], str]]:
    """Yield each visible command's argv path and epilog (the hidden `versions` alias skipped)."""
    import click
    import typer

    from modelyard_cli.main import app

    def walk(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], str]]:
        if command.epilog:
            yield path, command.epilog
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


@pytest.mark.parametrize("columns", [80, 120])
def test_help_shows_each_example_on_its_own_line(columns: int, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modelyard_cli.main import app

    root = run("--help", config=tmp_path / "c", COLUMNS=str(columns))
    found, _ = help_examples(root.stdout)
    assert found == [
        "modelyard login --dev --sub alice --role admin --workspace default",
        "modelyard models create echo-chat --learning-type supervised",
        "modelyard version push echo-chat ./project --title v1",
        "modelyard deploy echo-chat --selector site=lab",
        'modelyard chat echo-chat "hello" --key "$KEY"',
    ], root.stdout

    from modelyard_cli.session import EXAMPLES

    runner = CliRunner()
    checked = 0
    for path, epilog in command_paths():
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(columns)})
        assert shown.exit_code == 0, (path, shown.output)
        found, block = help_examples(shown.output)
        expected = [" ".join(command.split()) for command in EXAMPLES[epilog]]
        assert [" ".join(f.split()) for f in found] == expected, (path, block)
        assert all(len(line) <= min(columns, 78) for line in block), (path, block)
        checked += 1
    assert checked > 50  # every command has examples


def test_tables_fit_80_columns_with_short_ids(capsys: Any, monkeypatch: Any) -> None:
    import uuid

    from modelyard_cli.deployer import DEPLOYMENT_COLUMNS
    from modelyard_cli.output import Format, emit
    from modelyard_cli.registry import COLUMNS

    monkeypatch.setenv("COLUMNS", "80")
    models = [
        {
            "id": str(uuid.uuid4()),
            "name": f"fraud-detector-{n}",
            "learning_type": "semi-supervised",
            "functionality": "fraud detection for card payments across the whole of Europe",
            "tags": ["payments", "risk", "europe"],
            "approval": "not_reviewed",
        }
        for n in range(3)
    ]
    # Shares exactly its first 9 characters (the 10th differs whatever uuid4 drew there).
    other = "0" if models[0]["id"][9] != "0" else "1"
    twin = models[0]["id"][:9] + other * 4 + models[0]["id"][13:]
    models.append({**models[1], "id": twin, "name": "[b]x[/b]"})
    emit(models, output=Format.table, columns=COLUMNS["models"])
    table = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in table) <= 80, table
    assert all(line == line.rstrip() for line in table)
    rows = [line for line in table if line and not line.startswith((" ", "ID"))]
    shown = [row.split()[0] for row in rows]
    assert (
        shown
        == [
            models[0]["id"][:10],  # two ids share 9 characters: one more, as git does
            models[1]["id"][:8],
            models[2]["id"][:8],
            twin[:10],
        ]
    ), table
    assert "[b]x[/b]" in "\n".join(table)  # values are never read as markup
    assert "fraud-detector-1" in "\n".join(table)  # names fold only after the descriptive text

    emit(models, output=Format.table, columns=COLUMNS["models"], wide=True)
    wide = capsys.readouterr().out
    assert all(m["id"] in wide for m in models)
    emit(models, output=Format.json, columns=COLUMNS["models"])
    assert [m["id"] for m in json.loads(capsys.readouterr().out)] == [m["id"] for m in models]

    deployment = {
        "id": str(uuid.uuid4()),
        "model_name": "echo-chat",
        "version_number": 3,
        "device_name": "edge-berlin-01",
        "desired_state": "running",
        "state": "failed",
        "state_message": "container exited with code 1: weights missing (retrying in 30 s)",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    emit([deployment], output=Format.table, columns=DEPLOYMENT_COLUMNS)
    table = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in table) <= 80, table
    assert table[1].split()[:6] == [deployment["id"][:8], "echo-chat", "3", "edge-berlin-01",
                                    "running", "failed"], table  # fmt: skip


def test_a_name_or_an_id_prefix_finds_one_item() -> None:
    from modelyard_cli.session import AmbiguousReference, NameNotFound, find

    items = [
        {"id": "abcd1234-0000-4000-8000-000000000001", "name": "alpha"},
        {"id": "abcd1234-1111-4000-8000-000000000002", "name": "beta"},
        {"id": "ef012345-2222-4000-8000-000000000003", "name": "abcd1234"},
    ]
    listed: list[int] = []

    def every() -> list[dict[str, Any]]:
        listed.append(1)
        return items

    assert find("beta", "key", every)["id"].startswith("abcd1234-1")
    assert find("abcd1234", "key", every)["name"] == "abcd1234"  # a name beats a prefix (docker)
    assert find("EF01", "key", every)["name"] == "abcd1234"  # 4 hex digits are enough (git)
    assert find("abcd1234-1", "key", every)["name"] == "beta"
    with pytest.raises(AmbiguousReference) as ambiguous:
        find("abcd", "key", every)
    assert isinstance(ambiguous.value, UsageProblem)  # exit 2
    lines = str(ambiguous.value).splitlines()
    assert lines[0] == "'abcd' starts the ids of 2 keys: give more of the id"
    assert lines[1:] == [f"  {items[0]['id']}  alpha", f"  {items[1]['id']}  beta"]
    with pytest.raises(NameNotFound, match=r"no key named 'abc' \(an id prefix has at least 4"):
        find("abc", "key", every)
    with pytest.raises(NameNotFound, match="no key named 'ffff' or with an id starting 'ffff'"):
        find("ffff", "key", every)
    with pytest.raises(NameNotFound):
        find("abcd12340", "key", every)  # a dash belongs at the 9th character
    twice = [{"id": "1" * 8, "name": "same"}, {"id": "2" * 8, "name": "same"}]
    with pytest.raises(AmbiguousReference, match="2 keys are named 'same'"):
        find("same", "key", lambda: twice)


def test_group_strategy_options_make_the_strategy_body() -> None:
    from modelyard_cli.gateway import strategy_body

    ids = {"a": "id-a", "b": "id-b"}.__getitem__
    assert strategy_body("ordered", None, None, None, ids) is None
    assert strategy_body("least_busy", None, None, None, ids) == {"type": "least_busy"}
    assert strategy_body("weighted", ["a=90", "b=10"], None, "header:x-session-id", ids) == {
        "type": "weighted",
        "weights": {"id-a": 90, "id-b": 10},
        "sticky": {"by": "header", "header": "x-session-id"},
    }
    assert strategy_body("weighted", None, 1, "key", ids) == {
        "type": "weighted",
        "default_weight": 1,
        "sticky": {"by": "key"},
    }
    for bad in (
        ("ordered", ["a=1"], None, None),
        ("weighted", ["a=ninety"], None, None),
        ("weighted", None, 1, "cookie"),
    ):
        with pytest.raises(UsageProblem):
            strategy_body(*bad, ids)
