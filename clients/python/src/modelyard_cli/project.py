"""An AI project on disk: which files go into the zip, and its run manifest."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from modelyard_cli.config import UsageProblem

IGNORE_FILE = ".modelyardignore"
MANIFEST_FILES = ("modelyard.yaml", "modelyard.yml", "modelyard.json")
# Never shipped, whatever the ignore file says: VCS data and the CLI's own caches.
ALWAYS_IGNORED = [".git/", ".hg/", ".svn/", "__pycache__/", "*.pyc", ".DS_Store"]
# Files that do not get smaller by deflating: stored as they are, which keeps a push fast.
STORED_SUFFIXES = frozenset(
    {
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".zst",
        ".7z",
        ".png",
        ".jpg",
        ".jpeg",
        ".webp",
        ".mp4",
        ".mp3",
        ".onnx",
        ".pt",
        ".pth",
        ".safetensors",
        ".bin",
        ".gguf",
        ".npz",
        ".h5",
    }
)


def project_files(root: Path) -> list[Path]:
    """Return the files of a project directory that are shipped (sorted, relative to root)."""
    import pathspec

    patterns = list(ALWAYS_IGNORED)
    ignore = root / IGNORE_FILE
    if ignore.is_file():
        patterns += ignore.read_text().splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    shipped: list[Path] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        base = Path(directory).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not spec.match_file(f"{(base / d).as_posix()}/"))
        for name in sorted(files):
            relative = base / name
            full = root / relative
            if full.is_symlink() or not full.is_file():
                continue  # the deployer refuses links in a zip
            if not spec.match_file(relative.as_posix()):
                shipped.append(relative)
    return shipped


def zip_project(root: Path, target: Path) -> int:
    """Write the project's zip to `target`; return the number of files."""
    files = project_files(root)
    if not files:
        raise UsageProblem(f"{root} has no files to ship (check {IGNORE_FILE})")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for relative in files:
            stored = relative.suffix.lower() in STORED_SUFFIXES
            archive.write(
                root / relative,
                relative.as_posix(),
                compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
            )
    return len(files)


def parse_manifest(text: str, *, source: str) -> dict[str, Any]:
    """Return a manifest read from YAML or JSON text; a usage problem when it is not a mapping."""
    import yaml

    try:
        manifest = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise UsageProblem(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(manifest, dict):
        raise UsageProblem(f"{source} must hold a mapping (image, main, port, ...)")
    return manifest


def read_manifest(path: Path) -> dict[str, Any] | None:
    """Return the run manifest of a project directory or zip (None when it has none)."""
    if path.is_dir():
        for name in MANIFEST_FILES:
            if (path / name).is_file():
                return parse_manifest((path / name).read_text(), source=str(path / name))
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for name in MANIFEST_FILES:
                if name in names:
                    text = archive.read(name).decode("utf-8", "replace")
                    return parse_manifest(text, source=f"{path}:{name}")
    except zipfile.BadZipFile as exc:
        raise UsageProblem(f"{path} is neither a directory nor a zip file") from exc
    return None
