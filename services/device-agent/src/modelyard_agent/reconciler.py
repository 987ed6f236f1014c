"""Bring what runs on the device in line with the desired state, one deployment at a time.

Each deployment is reconciled by at most one task at a time; a newer command cancels the task in
flight (a cancelled task still waits for its Docker call to finish, see `docker_runtime`). A pass
is idempotent: it looks at the containers Docker has now, so it converges from any starting point
(agent restart mid-download or mid-start, container removed from outside, half-done update).

Failures: a `PermanentError` (bad zip, wrong checksum, failed build, never healthy) fails the
command's generation for good, keeping the previous version serving if there is one (`failed`
then `rolled_back`); anything else is retried with capped exponential backoff, forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx

from modelyard_agent.artifacts import (
    DownloadPolicy,
    PermanentError,
    TransientError,
    download_artifact,
    same_origin,
    unpack_artifact,
)
from modelyard_agent.background import cancel_and_wait
from modelyard_agent.docker_runtime import (
    LABEL_DEPLOYMENT,
    LABEL_DEVICE,
    LABEL_MANAGED,
    LABEL_MODEL,
    LABEL_MODEL_NAME,
    LABEL_VERSION,
    UNPRIVILEGED_USER,
    BuildFailedError,
    ContainerSpec,
    DockerError,
    DockerRuntime,
    Fence,
    ManagedContainer,
    free_loopback_port,
    is_root_user,
)
from modelyard_agent.outbox import ReportOutbox
from modelyard_agent.routes import Route, RouteTable
from modelyard_agent.settings import AgentSettings
from modelyard_agent.store import DeploymentRecord, DesiredStateStore
from modelyard_common.archive import ArchiveLimits, UnsafeArchiveError
from modelyard_common.contracts import (
    DEPLOYMENT_REPORTED,
    CommandAction,
    DeploymentReport,
    DeploymentState,
    DesiredState,
    VersionSpec,
)
from modelyard_common.events import new_event
from modelyard_common.manifest import Manifest, Protocol

log = logging.getLogger("modelyard.agent.reconciler")

PROJECT_MOUNT = "/opt/modelyard/project"
WRAPPER_MOUNT = "/opt/modelyard/runtime/modelyard_handlers.py"
# A container that crashed this many times while we waited for its health path will not recover.
CRASH_LIMIT = 2


@dataclass(slots=True)
class Schedule:
    """When a deployment is next reconciled, and how many passes in a row failed."""

    failures: int = 0
    next_due: float = 0.0


def built_image_tag(deployment_id: UUID, version_id: UUID) -> str:
    """Return the tag of the image built from a version's Dockerfile for one deployment."""
    return f"modelyard-built/{deployment_id.hex[:12]}:{version_id.hex}"


def network_name(deployment_id: UUID) -> str:
    """Return the Docker name of a deployment's own bridge network."""
    return f"modelyard-net-{deployment_id.hex}"


def runs_as_root(manifest: Manifest) -> bool:
    """Return whether the manifest opts out of the unprivileged user (`run_as_root: true`)."""
    return manifest.run_as_root


def container_name(model_name: str, deployment_id: UUID, version_id: UUID) -> str:
    """Return the Docker name of a version's container (readable, unique per deployment)."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", model_name.lower()).strip("-.")[:40] or "model"
    return f"modelyard-{slug}-{deployment_id.hex[:8]}-{version_id.hex[:8]}"


class Reconciler:
    """Drives every deployment of the device towards its desired state."""

    def __init__(
        self,
        *,
        settings: AgentSettings,
        store: DesiredStateStore,
        docker: DockerRuntime,
        outbox: ReportOutbox,
        routes: RouteTable,
        http: httpx.AsyncClient,
        wrapper_path: Path,
    ) -> None:
        self.settings = settings
        self.store = store
        self.docker = docker
        self.outbox = outbox
        self.routes = routes
        self.http = http
        self.wrapper_path = wrapper_path
        self.versions_dir = settings.data_dir / "versions"
        self.downloads_dir = settings.data_dir / "downloads"
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._schedule: dict[UUID, Schedule] = {}
        self._wake = asyncio.Event()
        self.passes = 0
        # Set by the agent once its data dir is ready (see `Agent._prepare_data_dir`).
        self.agent_epoch: str | None = None

    # -- scheduling ------------------------------------------------------------------------

    def command_accepted(self, deployment_id: UUID) -> None:
        """React to a newer command: drop the backoff, preempt the pass in flight, reconcile."""
        self._schedule.pop(deployment_id, None)
        task = self._tasks.get(deployment_id)
        if task is not None and not task.done():
            task.cancel()
        self._wake.set()

    def wake(self) -> None:
        """Ask for a reconciliation pass of every deployment now."""
        self._schedule.clear()
        self._wake.set()

    def busy(self, deployment_id: UUID) -> bool:
        """Return whether a pass for the deployment is in flight."""
        task = self._tasks.get(deployment_id)
        return task is not None and not task.done()

    async def run(self) -> None:
        """Reconcile at start, on every wake-up and every `reconcile_interval_s`, forever."""
        next_sweep = 0.0
        while True:
            self._wake.clear()
            self._schedule_due()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.settings.reconcile_interval_s
                with contextlib.suppress(Exception):
                    await self._sweep_orphans()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_wait()):
                    await self._wake.wait()

    async def stop(self) -> None:
        """Cancel the passes in flight and wait for them."""
        await cancel_and_wait(list(self._tasks.values()))

    def _schedule_due(self) -> None:
        now = time.monotonic()
        for record in self.store.all():
            deployment_id = record.deployment_id
            if self.busy(deployment_id):
                continue
            schedule = self._schedule.get(deployment_id)
            if schedule is not None and (schedule.next_due > now or record.is_tombstone):
                # A removed deployment is checked once per agent start (and on a newer
                # command), not every period: tombstones only accumulate.
                continue
            task = asyncio.create_task(
                self._guarded_pass(record), name=f"reconcile-{deployment_id}"
            )
            task.add_done_callback(lambda _t: self._wake.set())
            self._tasks[deployment_id] = task

    def _next_wait(self) -> float:
        now = time.monotonic()
        waits = [s.next_due - now for d, s in self._schedule.items() if not self.busy(d)]
        return max(0.05, min([self.settings.reconcile_interval_s, *waits]))

    async def _guarded_pass(self, record: DeploymentRecord) -> None:
        deployment_id = record.deployment_id
        try:
            await self.reconcile(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            schedule = self._schedule.setdefault(deployment_id, Schedule())
            schedule.failures += 1
            delay = min(
                self.settings.backoff_initial_s * 2 ** (schedule.failures - 1),
                self.settings.backoff_max_s,
            )
            schedule.next_due = time.monotonic() + delay
            message = f"{_describe_error(exc)}; retrying in {delay:.0f}s"
            log.warning("deployment %s: %s", deployment_id, message, exc_info=not _expected(exc))
            if record.state is not DeploymentState.failed or schedule.failures == 1:
                await self.report(record, DeploymentState.failed, message=message)
        else:
            # Healthy: the next look is the periodic one (a command or wake() comes sooner).
            self._schedule[deployment_id] = Schedule(
                next_due=time.monotonic() + self.settings.reconcile_interval_s
            )
        finally:
            self.passes += 1

    # -- one deployment --------------------------------------------------------------------

    async def reconcile(self, record: DeploymentRecord) -> None:
        """Make one deployment's actual state match its desired state (one idempotent pass)."""
        command = record.command
        containers = await self.docker.list_managed(command.deployment_id)
        if command.desired_state is DesiredState.removed:
            await self._remove(record, containers)
        elif command.desired_state is DesiredState.stopped:
            await self._stop(record, containers)
        else:
            await self._run(record, containers)

    async def _remove(self, record: DeploymentRecord, containers: list[ManagedContainer]) -> None:
        deployment_id = record.deployment_id
        files = self.versions_dir / str(deployment_id)
        leftovers = (
            bool(containers)
            or await asyncio.to_thread(files.exists)
            or bool(await self._images_of(deployment_id))
        )
        if record.state is DeploymentState.removed and not leftovers:
            return
        if record.state is not DeploymentState.removing:
            await self.report(record, DeploymentState.removing)
        self.routes.withdraw(deployment_id)
        for container in containers:
            await self.routes.drain(container.id, self.settings.drain_timeout_s)
            await self.docker.remove(container.id, self.settings.stop_timeout_s)
        await self.docker.remove_networks(deployment_id)
        for image in await self._images_of(deployment_id):
            await self.docker.remove_image(image)
        await asyncio.to_thread(
            shutil.rmtree, self.versions_dir / str(deployment_id), ignore_errors=True
        )
        await self._delete_downloads(deployment_id)
        record.active_version = None
        record.host_port = None
        record.applied_generation = record.command.generation
        await self.report(record, DeploymentState.removed)

    async def _stop(self, record: DeploymentRecord, containers: list[ManagedContainer]) -> None:
        target = record.command.version
        self.routes.withdraw(record.deployment_id)
        for container in containers:
            if container.version_id != target.id:
                await self._retire(record.deployment_id, container)
            elif container.running or container.status == "restarting":
                await self.routes.drain(container.id, self.settings.drain_timeout_s)
                await self.docker.stop(container.id, self.settings.stop_timeout_s)
        record.applied_generation = record.command.generation
        if record.state is not DeploymentState.stopped:
            record.host_port = None
            await self.report(record, DeploymentState.stopped)

    async def _run(self, record: DeploymentRecord, containers: list[ManagedContainer]) -> None:
        command = record.command
        target = command.version
        mine = [c for c in containers if c.version_id == target.id]
        others = [c for c in containers if c.version_id != target.id]
        mine.sort(key=lambda c: not c.running)
        for duplicate in mine[1:]:
            await self.docker.remove(duplicate.id, self.settings.stop_timeout_s)
        current = mine[0] if mine else None
        if current is not None and current.network != network_name(command.deployment_id):
            # Made before containers were fenced (on the default bridge, as root): replace it.
            log.info("replacing unfenced container %s", current.name)
            self.routes.withdraw(command.deployment_id)
            await self.routes.drain(current.id, self.settings.drain_timeout_s)
            await self.docker.remove(current.id, self.settings.stop_timeout_s)
            current = None

        if record.failed_generation == command.generation:
            # This generation failed for good; only keep the previous version serving.
            await self._keep_previous(record, others)
            return

        restart_due = (
            command.action is CommandAction.restart
            and record.applied_generation < command.generation
        )
        route = self.routes.get(target.model_name)
        try:
            if current is None:
                current = await self._deploy(record, target)
            elif not current.running:
                await self.report(record, DeploymentState.starting, version=target)
                await self.docker.start(current.id)
                current = await self._wait_healthy(current, target)
            elif restart_due:
                await self.report(record, DeploymentState.starting, version=target)
                await self.docker.restart(current.id, self.settings.stop_timeout_s)
                current = await self._wait_healthy(current, target)
            elif route is None or route.container_id != current.id:
                # Running but not routed: adopted after an agent restart, or mid-update.
                current = await self._wait_healthy(current, target)
        except PermanentError as exc:
            served_before = (
                record.active_version is not None and record.active_version.id == target.id
            )
            if served_before:
                # This version ran fine here before (it crashed, or was stopped): not a bad
                # version, so keep its container and retry with backoff instead of failing it.
                raise TransientError(str(exc)) from exc
            await self._fail(record, target, exc, others, new_container=current)
            return

        if current.host_port is None:
            raise DockerError("the container has no published port")
        self.routes.switch(
            Route(
                model_name=target.model_name,
                deployment_id=record.deployment_id,
                version_id=target.id,
                container_id=current.id,
                host_port=current.host_port,
            )
        )
        changed = (
            record.state is not DeploymentState.running
            or record.host_port != current.host_port
            or record.active_version is None
            or record.active_version.id != target.id
        )
        record.active_version = target
        record.host_port = current.host_port
        record.applied_generation = command.generation
        if changed:
            await self.report(record, DeploymentState.running, version=target)
        for old in others:
            await self._retire(record.deployment_id, old)
        await self._prune_files(record.deployment_id, keep=target.id)

    async def _deploy(self, record: DeploymentRecord, target: VersionSpec) -> ManagedContainer:
        """Fetch, unpack, build and start a version; return its healthy container."""
        project_dir = await self._prepare_files(record, target)
        manifest = target.manifest
        image = manifest.image or ""
        await self.report(record, DeploymentState.building, version=target)
        if manifest.dockerfile:
            image = built_image_tag(record.deployment_id, target.id)
            if not await self.docker.image_exists(image):
                if not await asyncio.to_thread((project_dir / "Dockerfile").is_file):
                    raise PermanentError(
                        "The manifest asks for a Dockerfile build but the zip has none."
                    )
                try:
                    await self.docker.build(
                        project_dir,
                        image,
                        self._labels(record.deployment_id, target),
                        self.settings.build_timeout_s,
                    )
                except BuildFailedError as exc:
                    await self._forget_version(record.deployment_id, target.id)
                    raise PermanentError(str(exc), exc.log_tail) from exc
        elif not await self.docker.image_exists(image):
            raise PermanentError(f"Image {image!r} is not on this device (nothing is pulled).")

        await self.report(record, DeploymentState.starting, version=target)
        container = await self._start_container(record.deployment_id, target, image, project_dir)
        try:
            return await self._wait_healthy(container, target)
        except PermanentError:
            await self.docker.remove(container.id, 0)
            await self._forget_version(record.deployment_id, target.id)
            raise

    async def _prepare_files(self, record: DeploymentRecord, target: VersionSpec) -> Path:
        project_dir = self.versions_dir / str(record.deployment_id) / str(target.id)
        if await asyncio.to_thread(project_dir.is_dir):
            return project_dir
        await self.report(record, DeploymentState.downloading, version=target)
        if not same_origin(target.artifact_url, self.settings.deployer_url):
            # The device token goes to the deployer only: a command naming another place is
            # refused before any request is made.
            raise PermanentError(
                f"Refused to download version {target.number} from {target.artifact_url!r}: "
                f"artifacts come only from the configured deployer ({self.settings.deployer_url})."
            )
        zip_path = self.downloads_dir / f"{record.deployment_id}-{target.id}.zip"
        policy = DownloadPolicy(
            token=self.settings.token,
            attempts=self.settings.download_attempts,
            timeout_s=self.settings.download_timeout_s,
            disk_reserve_bytes=self.settings.disk_reserve_mb * 1024 * 1024,
        )

        async def verifying() -> None:
            await self.report(record, DeploymentState.verifying, version=target)

        await download_artifact(self.http, target, zip_path, policy, on_verify=verifying)
        limits = ArchiveLimits(
            max_total_bytes=self.settings.max_extracted_mb * 1024 * 1024,
            max_member_bytes=self.settings.max_extracted_mb * 1024 * 1024,
            max_ratio=self.settings.max_compression_ratio,
        )
        try:
            await unpack_artifact(zip_path, project_dir, limits)
        except UnsafeArchiveError as exc:
            raise PermanentError(f"The artifact was refused: {exc}") from exc
        finally:
            await asyncio.to_thread(zip_path.unlink, missing_ok=True)
        # The container's unprivileged user reads the (read-only) project whatever the agent's
        # umask was; nothing in it is secret from the model it belongs to.
        await asyncio.to_thread(_readable_by_all, project_dir)
        return project_dir

    async def _start_container(
        self, deployment_id: UUID, target: VersionSpec, image: str, project_dir: Path
    ) -> ManagedContainer:
        manifest = target.manifest
        if not math.isfinite(manifest.cores) or manifest.cores <= 0:
            raise PermanentError(
                f"Version {target.number} asks for {manifest.cores!r} cores: a CPU limit is a "
                "positive number."
            )
        fence = await self._fence(deployment_id, manifest, image)
        environment = {**manifest.env, "PORT": str(manifest.port)}
        if fence.user == UNPRIVILEGED_USER:
            # `nobody` has no home; Python and most libraries want a writable one.
            environment.setdefault("HOME", "/tmp")
        mounts: dict[str, str] = {}
        command: list[str] | None = None
        working_dir: str | None = None
        if manifest.protocol is Protocol.handlers:
            command = [manifest.language, WRAPPER_MOUNT]
            mounts = {str(self.wrapper_path): WRAPPER_MOUNT}
            if not manifest.dockerfile:
                mounts[str(project_dir)] = PROJECT_MOUNT
                working_dir = PROJECT_MOUNT
                environment["MODELYARD_PROJECT_DIR"] = PROJECT_MOUNT
            # A built image runs in its own WORKDIR, with what its build steps made there; the
            # wrapper imports `main` from the working directory.
            environment.update(
                MODELYARD_MAIN=manifest.main,
                MODELYARD_HANDLERS=",".join(h.name for h in manifest.handlers),
                MODELYARD_INPUT_TYPE=manifest.input_type.value,
                MODELYARD_HEALTH_PATH=manifest.health_path,
                PYTHONDONTWRITEBYTECODE="1",
            )
        elif not manifest.dockerfile:
            mounts = {str(project_dir): PROJECT_MOUNT}
            command = [manifest.language, manifest.main]
            working_dir = PROJECT_MOUNT
            environment.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        last_error: DockerError | None = None
        for _ in range(3):
            spec = ContainerSpec(
                name=container_name(target.model_name, deployment_id, target.id),
                image=image,
                labels=self._labels(deployment_id, target),
                environment=environment,
                container_port=manifest.port,
                host_port=free_loopback_port(),
                mem_limit_mb=manifest.max_ram_mb,
                cores=manifest.cores,
                fence=fence,
                command=command,
                working_dir=working_dir,
                mounts=mounts,
            )
            try:
                return await self.docker.run(spec)
            except DockerError as exc:
                # Another process may have taken the port between our probe and Docker's bind.
                reason = str(exc)
                if "already allocated" not in reason and "already in use" not in reason:
                    raise
                last_error = exc
        raise TransientError(str(last_error))

    async def _fence(self, deployment_id: UUID, manifest: Manifest, image: str) -> Fence:
        """Return how a version's container is fenced: see `Fence` and the README."""
        settings = self.settings
        fence = Fence(
            network=network_name(deployment_id),
            network_labels={
                LABEL_MANAGED: "true",
                LABEL_DEVICE: str(settings.device_id),
                LABEL_DEPLOYMENT: str(deployment_id),
            },
            pids_limit=settings.container_pids_limit,
            tmp_mb=settings.container_tmp_mb,
        )
        if runs_as_root(manifest):
            # The opt-out: root with Docker's default capabilities and a writable root file
            # system; its own network, the pids limit and the CPU floor still hold.
            return replace(fence, user="0:0", read_only_rootfs=False, drop_capabilities=False)
        # An image that names a non-root user of its own (Dockerfile `USER app`) runs as that
        # user; one that would run as root runs as `nobody` instead.
        image_user = await self.docker.image_user(image)
        return replace(fence, user=UNPRIVILEGED_USER if is_root_user(image_user) else image_user)

    async def _wait_healthy(
        self, container: ManagedContainer, target: VersionSpec
    ) -> ManagedContainer:
        """Return the container once its health path answers; raise `PermanentError` if never."""
        manifest = target.manifest
        deadline = time.monotonic() + self.settings.health_timeout_s
        next_inspect = 0.0
        current: ManagedContainer | None = container
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_inspect:
                current = await self.docker.inspect(container.id)
                next_inspect = now + 1.0
                if current is None:
                    raise TransientError("the container disappeared while starting")
                crashed = current.restart_count >= CRASH_LIMIT or current.status in (
                    "exited",
                    "dead",
                )
                if crashed and current.status != "running":
                    break
            if current is not None and current.host_port is not None:
                url = f"http://127.0.0.1:{current.host_port}{manifest.health_path}"
                with contextlib.suppress(httpx.HTTPError):
                    response = await self.http.get(url, timeout=2.0)
                    if response.status_code < 400:
                        return current
            await asyncio.sleep(self.settings.health_interval_s)
        tail = await self.docker.logs(container.id, self.settings.log_tail_lines)
        state = current.status if current is not None else "gone"
        raise PermanentError(
            f"Version {target.number} did not answer {manifest.health_path} within "
            f"{self.settings.health_timeout_s:g}s (container {state}).",
            tail,
        )

    async def _fail(
        self,
        record: DeploymentRecord,
        target: VersionSpec,
        error: PermanentError,
        others: list[ManagedContainer],
        *,
        new_container: ManagedContainer | None,
    ) -> None:
        """Report a permanent failure; keep or restore the previous version if there is one."""
        command = record.command
        if new_container is not None:
            tail = error.log_tail or await self.docker.logs(
                new_container.id, self.settings.log_tail_lines
            )
            error = PermanentError(str(error), tail)
            await self.docker.remove(new_container.id, 0)
            await self._forget_version(record.deployment_id, target.id)
        record.failed_generation = command.generation
        record.applied_generation = command.generation
        await self.report(
            record,
            DeploymentState.failed,
            message=str(error),
            log_tail=error.log_tail,
            version=target,
        )
        if await self._keep_previous(record, others):
            previous = record.active_version
            number = previous.number if previous is not None else "?"
            await self.report(
                record,
                DeploymentState.rolled_back,
                message=f"Version {target.number} failed; version {number} keeps serving.",
                version=previous,
            )
        else:
            self.routes.withdraw(record.deployment_id)
            record.host_port = None
            await self.store.save(record)

    async def _keep_previous(
        self, record: DeploymentRecord, others: list[ManagedContainer]
    ) -> bool:
        """Make sure the previous version's container serves; return whether there is one."""
        previous_spec = self._previous_spec(record, others)
        candidates = [c for c in others if previous_spec and c.version_id == previous_spec.id]
        for stray in (c for c in others if c not in candidates):
            await self._retire(record.deployment_id, stray)
        if previous_spec is None or not candidates:
            return False
        previous = candidates[0]
        route = self.routes.get(previous_spec.model_name)
        if not previous.running:
            await self.docker.start(previous.id)
            previous = await self._wait_healthy(previous, previous_spec)
        elif route is None or route.container_id != previous.id:
            previous = await self._wait_healthy(previous, previous_spec)
        if previous.host_port is None:
            return False
        self.routes.switch(
            Route(
                model_name=previous_spec.model_name,
                deployment_id=record.deployment_id,
                version_id=previous_spec.id,
                container_id=previous.id,
                host_port=previous.host_port,
            )
        )
        if record.host_port != previous.host_port or record.active_version != previous_spec:
            record.active_version = previous_spec
            record.host_port = previous.host_port
            await self.store.save(record)
        return True

    def _previous_spec(
        self, record: DeploymentRecord, others: list[ManagedContainer]
    ) -> VersionSpec | None:
        ids = {c.version_id for c in others}
        for spec in (record.active_version, record.command.previous_version):
            if spec is not None and spec.id in ids and spec.id != record.command.version.id:
                return spec
        return None

    async def _retire(self, deployment_id: UUID, container: ManagedContainer) -> None:
        """Stop and remove an old version's container, its built image and its files."""
        await self.routes.drain(container.id, self.settings.drain_timeout_s)
        await self.docker.remove(container.id, self.settings.stop_timeout_s)
        if container.version_id is not None:
            await self._forget_version(deployment_id, container.version_id)

    async def _forget_version(self, deployment_id: UUID, version_id: UUID) -> None:
        await self.docker.remove_image(built_image_tag(deployment_id, version_id))
        await asyncio.to_thread(
            shutil.rmtree,
            self.versions_dir / str(deployment_id) / str(version_id),
            ignore_errors=True,
        )

    async def _prune_files(self, deployment_id: UUID, *, keep: UUID) -> None:
        """Delete unpacked versions of a deployment other than `keep` (e.g. a cancelled one)."""

        def prune() -> None:
            directory = self.versions_dir / str(deployment_id)
            for path in directory.iterdir() if directory.is_dir() else []:
                if path.name != str(keep):
                    shutil.rmtree(path, ignore_errors=True)

        await asyncio.to_thread(prune)

    async def _images_of(self, deployment_id: UUID) -> list[str]:
        images = await self.docker.managed_images()
        return [ref for ref, labels in images if labels.get(LABEL_DEPLOYMENT) == str(deployment_id)]

    async def _delete_downloads(self, deployment_id: UUID) -> None:
        def delete() -> None:
            for path in self.downloads_dir.glob(f"{deployment_id}-*"):
                path.unlink(missing_ok=True)

        await asyncio.to_thread(delete)

    async def _sweep_orphans(self) -> None:
        """Remove managed containers and images of deployments this device no longer has."""
        known = {r.deployment_id for r in self.store.all() if not r.is_tombstone}
        busy = {d for d in self._tasks if self.busy(d)}
        for container in await self.docker.list_managed():
            owner = container.deployment_id
            if owner not in known and owner not in busy:
                log.info("removing orphan container %s", container.name)
                await self.docker.remove(container.id, self.settings.stop_timeout_s)
        for reference, labels in await self.docker.managed_images():
            owner_label = labels.get(LABEL_DEPLOYMENT)
            owner_id = _uuid(owner_label)
            if owner_id not in known and owner_id not in busy:
                await self.docker.remove_image(reference)
        # Networks left by a crash between a container's removal and its network's.
        for name, labels in await self.docker.managed_networks():
            owner_id = _uuid(labels.get(LABEL_DEPLOYMENT))
            if owner_id not in known and owner_id not in busy:
                log.info("removing orphan network %s", name)
                await self.docker.remove_network(name)

    def _labels(self, deployment_id: UUID, target: VersionSpec) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_DEVICE: str(self.settings.device_id),
            LABEL_MODEL: str(target.model_id),
            LABEL_MODEL_NAME: target.model_name,
            LABEL_VERSION: str(target.id),
            LABEL_DEPLOYMENT: str(deployment_id),
        }

    # -- reports ---------------------------------------------------------------------------

    async def report(
        self,
        record: DeploymentRecord,
        state: DeploymentState,
        *,
        message: str = "",
        log_tail: list[str] | None = None,
        version: VersionSpec | None = None,
    ) -> None:
        """Record a state change and spool its report for the deployer."""
        record.sequence += 1
        record.state = state
        record.message = message
        await self.store.save(record)
        running = state in (DeploymentState.running, DeploymentState.rolled_back)
        host_port = record.host_port if running else None
        report = DeploymentReport(
            deployment_id=record.deployment_id,
            device_id=self.settings.device_id,
            generation=record.command.generation,
            sequence=record.sequence,
            state=state,
            version_id=(version or record.command.version).id,
            message=message,
            log_tail=(log_tail or [])[-self.settings.log_tail_lines :],
            host_port=host_port,
            reported_at=datetime.now(UTC),
            agent_epoch=self.agent_epoch,
        )
        log.info("deployment %s -> %s %s", record.deployment_id, state.value, message)
        await self.outbox.put(
            new_event(
                type=DEPLOYMENT_REPORTED,
                source=f"/devices/{self.settings.device_id}/agent",
                subject=str(record.deployment_id),
                data=report.model_dump(mode="json"),
            )
        )


def _readable_by_all(directory: Path) -> None:
    """Give everyone read access to a tree (and search access to its directories)."""
    for root, dirs, files in os.walk(directory):
        os.chmod(root, os.stat(root).st_mode | 0o555)
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | 0o444)
        del dirs


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


def _expected(exc: BaseException) -> bool:
    return isinstance(exc, TransientError | DockerError | httpx.HTTPError)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, TransientError | DockerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
