"""Each deployment's own bridge network: made on demand, removed with the deployment."""

from __future__ import annotations

import logging
from uuid import UUID

import docker
import docker.errors
from docker.models.networks import Network

from modelyard_agent.containers.engine import DockerEngine
from modelyard_agent.containers.errors import DockerError, NetworkPoolExhaustedError, explain
from modelyard_agent.containers.labels import LABEL_DEVICE, LABEL_MANAGED

log = logging.getLogger("modelyard.agent.docker")

#: Per-deployment networks: no traffic between containers on the same bridge either (an old and
#: a new version of a deployment do not need to talk). Published ports and outbound traffic work.
NETWORK_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}


class NetworkOps(DockerEngine):
    """The deployment networks of one device."""

    def _ensure_network(
        self, client: docker.DockerClient, name: str, labels: dict[str, str]
    ) -> None:
        """Make the deployment's bridge network unless it is there (and ours)."""
        try:
            existing = client.networks.get(name)
        except docker.errors.NotFound:
            pass
        else:
            mine = existing.attrs.get("Labels") or {}
            if mine.get(LABEL_DEVICE) != self.device_id or mine.get(LABEL_MANAGED) != "true":
                raise DockerError(f"Network {name!r} exists and is not this agent's.")
            return
        try:
            client.networks.create(
                name,
                driver="bridge",
                options=NETWORK_OPTIONS,
                labels=labels,
                check_duplicate=True,
                internal=False,
            )
        except docker.errors.APIError as exc:
            reason = explain(exc)
            if "available" in reason and "pool" in reason:
                raise NetworkPoolExhaustedError(
                    "Docker has no free address range for another deployment network; widen "
                    f"`default-address-pools` in the engine's daemon.json ({reason})."
                ) from exc
            raise

    async def remove_networks(self, deployment_id: UUID | None = None) -> list[str]:
        """Remove this device's deployment networks (all, or one deployment's); return names.

        A network a container is still attached to stays (Docker refuses); the next sweep
        takes it once the container is gone.
        """

        def remove() -> list[str]:
            found = self._docker().networks.list(filters=self._filters(deployment_id))
            return [str(network.name) for network in found if _removed(network)]

        return await self._call(remove)

    async def managed_networks(self) -> list[tuple[str, dict[str, str]]]:
        """Return (name, labels) of the deployment networks this device's agent made."""

        def listing() -> list[tuple[str, dict[str, str]]]:
            found = self._docker().networks.list(filters=self._filters())
            return [(str(n.name), dict(n.attrs.get("Labels") or {})) for n in found]

        return await self._call(listing)

    async def remove_network(self, name: str) -> None:
        """Remove one network by name (gone already, or still in use, is fine)."""

        def remove() -> None:
            try:
                network = self._docker().networks.get(name)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                log.info("network %s stays for now: %s", name, explain(exc))
                return
            _removed(network)

        await self._call(remove)


def _removed(network: Network) -> bool:
    """Remove a network; return False if it was gone already or stays (still in use)."""
    try:
        network.remove()
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        log.info("network %s stays for now: %s", network.name, explain(exc))
        return False
    return True
