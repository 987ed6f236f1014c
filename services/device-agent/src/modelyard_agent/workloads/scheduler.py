"""Bring what runs on the device in line with the desired state, one deployment at a time.

Each deployment is reconciled by at most one task at a time; a newer command cancels the task in
flight (a cancelled task still waits for its Docker call to finish, see `containers.engine`). A
pass is idempotent: it looks at the containers Docker has now, so it converges from any starting
point (agent restart mid-download or mid-start, container removed from outside, half-done update).

Failures: a `PermanentError` (bad zip, wrong checksum, too little free disk, failed build, never
healthy) fails the command's generation for good, keeping the previous version serving if there
is one (`failed` then `rolled_back`); anything else is retried with capped exponential backoff,
forever. A full disk stops none of this: heartbeats need no disk, and a failure that cannot be
recorded now is reported by the next failed pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from uuid import UUID

import httpx

from modelyard_agent.background import cancel_and_wait
from modelyard_agent.containers.errors import DockerError
from modelyard_agent.errors import TransientError
from modelyard_agent.store import DeploymentRecord
from modelyard_agent.workloads.actions import reconcile
from modelyard_agent.workloads.cleanup import sweep_orphans
from modelyard_agent.workloads.context import WorkloadContext
from modelyard_common.contracts import DeploymentState

log = logging.getLogger("modelyard.agent.reconciler")


@dataclass(slots=True)
class Schedule:
    """When a deployment is next reconciled, and how many passes in a row failed."""

    failures: int = 0
    next_due: float = 0.0


class Reconciler:
    """Drives every deployment of the device towards its desired state."""

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._schedule: dict[UUID, Schedule] = {}
        self._wake = asyncio.Event()
        self.passes = 0

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
                    await sweep_orphans(self.ctx, busy={d for d in self._tasks if self.busy(d)})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_wait()):
                    await self._wake.wait()

    async def stop(self) -> None:
        """Cancel the passes in flight and wait for them."""
        await cancel_and_wait(list(self._tasks.values()))

    async def reconcile(self, record: DeploymentRecord) -> None:
        """Make one deployment's actual state match its desired state (one idempotent pass)."""
        await reconcile(self.ctx, record)

    def _schedule_due(self) -> None:
        now = time.monotonic()
        for record in self.ctx.store.all():
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
                try:
                    await self.ctx.reporter.report(record, DeploymentState.failed, message=message)
                except OSError as report_error:
                    # A full disk takes no report now; the next failed pass reports again.
                    log.warning(
                        "deployment %s: failure not recorded (%s)", deployment_id, report_error
                    )
        else:
            # Healthy: the next look is the periodic one (a command or wake() comes sooner).
            self._schedule[deployment_id] = Schedule(
                next_due=time.monotonic() + self.settings.reconcile_interval_s
            )
        finally:
            self.passes += 1


def _expected(exc: BaseException) -> bool:
    return isinstance(exc, TransientError | DockerError | httpx.HTTPError)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, TransientError | DockerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
