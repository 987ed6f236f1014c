"""Images on the device: the ones projects run on, and the ones built from their Dockerfiles."""

from __future__ import annotations

import contextlib
from pathlib import Path

import docker
import docker.errors

from modelyard_agent.containers.engine import DockerEngine
from modelyard_agent.containers.errors import BuildFailedError, DockerError, explain


class ImageOps(DockerEngine):
    """Looking at, building and removing images (never pulling)."""

    async def image_user(self, reference: str) -> str:
        """Return the `USER` an image runs as ("" for root by default)."""

        def look() -> str:
            image = self._docker().images.get(reference)
            return str((image.attrs.get("Config") or {}).get("User") or "")

        try:
            return await self._call(look)
        except docker.errors.ImageNotFound as exc:
            raise DockerError(f"Image {reference!r} is not on this device.") from exc

    async def image_exists(self, reference: str) -> bool:
        """Return whether an image is present locally."""

        def look() -> bool:
            try:
                self._docker().images.get(reference)
            except docker.errors.ImageNotFound:
                return False
            return True

        return await self._call(look)

    async def build(self, context: Path, tag: str, labels: dict[str, str], timeout_s: float) -> str:
        """Build the Dockerfile in `context` as `tag`; return the image id.

        Never pulls: every image a project may use is built or imported locally.
        """

        def build() -> str:
            # A client of its own: a build may take far longer than the usual call timeout.
            client = docker.from_env(timeout=int(timeout_s)).api
            lines: list[str] = []
            image_id: str | None = None
            try:
                for chunk in client.build(
                    path=str(context),
                    tag=tag,
                    labels=labels,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                ):
                    if "stream" in chunk:
                        lines.extend(str(chunk["stream"]).rstrip("\n").splitlines())
                    if "aux" in chunk and "ID" in chunk["aux"]:
                        image_id = str(chunk["aux"]["ID"])
                    if "error" in chunk:
                        lines.append(str(chunk["error"]).rstrip())
                        raise BuildFailedError(
                            f"docker build failed: {str(chunk['error']).strip()}", lines[-50:]
                        )
            except docker.errors.APIError as exc:
                message = f"docker build failed: {explain(exc)}"
                raise BuildFailedError(message, lines[-50:]) from exc
            finally:
                client.close()
            if image_id is None:
                image_id = str(self._docker().images.get(tag).id)
            return image_id

        return await self._call(build)

    async def remove_image(self, reference: str) -> None:
        """Remove an image built for a deployment (absent already is fine)."""

        def remove() -> None:
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.NotFound):
                self._docker().images.remove(reference, force=True, noprune=False)

        await self._call(remove)

    async def managed_images(self) -> list[tuple[str, dict[str, str]]]:
        """Return (tag or id, labels) of images this device's agent built."""

        def listing() -> list[tuple[str, dict[str, str]]]:
            images = self._docker().images.list(filters=self._filters())
            return [(i.tags[0] if i.tags else str(i.id), dict(i.labels or {})) for i in images]

        return await self._call(listing)
