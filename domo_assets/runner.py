"""Runs one catalog export end to end: access check, start (or attach), poll, inspect S3, count.

Plain Python over the client and an S3 client: no Dagster here, so the asset layer only turns
an :class:`ExportOutcome` into events, and benchmarks or scripts can drive exports directly.

One active export per DataSet (Domo's rule) is respected like this:

* the DataSet's active export is the one this asset started earlier (``started_here``, kept by
  the asset layer in Dagster's key-value store): attach to it and poll it;
* another export is active (another asset's query, another run, another tool): its query is not
  visible through Domo's API, so it cannot be assumed to be ours: wait for it to end, then start;
* Domo refuses the POST because an export is running (or answers with the running export):
  the same waiting, bounded by ``MAX_START_ATTEMPTS``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from domo_assets.catalog import ExportConfig
from domo_assets.client import DomoClient, ExportStart, PollSchedule, StartOutcome, latest_active
from domo_assets.credentials import CredentialProvider
from domo_assets.errors import DomoError, DomoExportInProgressError
from domo_assets.guard import DestinationReport, check_destination
from domo_assets.manifest import write_manifest
from domo_assets.models import DomoUser, Export, ExportRequest
from domo_assets.outcome import ExportOutcome
from domo_assets.polling import expected_duration
from domo_assets.storage import inspect_objects
from domo_assets.verify import VerificationReport, verify_objects

# Each attempt waits for a foreign export to end; a busy DataSet may need a few.
MAX_START_ATTEMPTS = 5
# Fresh exports (their start just read) are polled around their expected end.
_FRESH = (StartOutcome.STARTED, StartOutcome.RECOVERED)

StartCallback = Callable[[ExportConfig, ExportStart], None]
ResumeLookup = Callable[[], str | None]


class ExportRunner:
    """Drives exports for one step.

    Args:
        client: The Domo client.
        s3_client: A boto3 S3 client for reading what landed.
        credentials: Where the credentials handed to Domo come from.
        schedule: How often to poll.
        log: Progress log.
        stop: Set when the run is terminated; polling stops promptly.
        announce: Receives each export's start line ("<name>: Domo export <id> started");
            ``log.info`` by default. A caller driving many exports may gather them.
    """

    def __init__(
        self,
        client: DomoClient,
        s3_client: Any,
        credentials: CredentialProvider,
        schedule: PollSchedule,
        log: logging.Logger,
        stop: threading.Event | None = None,
        announce: Callable[[str], None] | None = None,
    ):
        self.client = client
        self.s3_client = s3_client
        self.credentials = credentials
        self.schedule = schedule
        self.log = log
        self.stop = stop or threading.Event()
        self.announce = announce or log.info
        self._lock = threading.Lock()
        self._user: DomoUser | None = None
        self._user_known = False
        self._dataset_locks: dict[str, threading.Lock] = {}
        self._guard_lock = threading.Lock()
        self._destinations: dict[tuple[str, str, bool], DestinationReport] = {}

    def run(
        self,
        config: ExportConfig,
        *,
        partition_key: str | None = None,
        started_here: ResumeLookup = lambda: None,
        on_start: StartCallback | None = None,
    ) -> ExportOutcome:
        """Export one catalog entry and inspect the result.

        Args:
            config: The catalog entry.
            partition_key: The partition to export, for a partitioned entry.
            started_here: Returns the export this asset last started (in any attempt or run),
                read again whenever another export is found running.
            on_start: Called once the export is known, before polling (to record its id).

        Raises:
            DomoError: Access errors (before any export is attempted), a failed or timed-out
                export, or a start that kept being refused.
        """
        destination = self._check_destination(config)
        dataset = self.client.get_dataset(config.dataset_id)
        columns = self.client.get_columns(config.dataset_id)
        if config.partition is not None:
            types = {c.name: c.type for c in columns}
            config.partition.check_column_type(types.get(config.partition.column), config.name)
        # Exports of one DataSet in this step go one after another: Domo runs one at a time.
        with self._dataset_lock(config.dataset_id):
            start, history = self._start(config, partition_key, started_here)
            if on_start is not None:
                on_start(config, start)
            export = start.export
            if export.is_active:
                expected_seconds = (
                    expected_duration(history, config.bucket, config.path)
                    if start.outcome in _FRESH
                    else None
                )
                export = self._wait(config, export, expected_seconds)
        stored = inspect_objects(self.s3_client, export.objects)
        expected = (
            None
            if config.group_by
            else self.client.count_rows(config.dataset_id, config.to_query(partition_key).where)
        )
        outcome = ExportOutcome(
            config,
            dataset,
            columns,
            export,
            start.outcome,
            stored,
            expected,
            destination,
            self.acting_user(),
            partition_key,
        )
        if not stored or not all(s.ok for s in stored):
            self.log.warning(
                f"{config.name}: no manifest written: an object Domo reported is missing or empty"
            )
            return outcome
        if config.verify == "deep":
            outcome = replace(outcome, verification=self._verify(outcome))
        return replace(outcome, manifest_uri=write_manifest(self.s3_client, outcome))

    def _verify(self, outcome: ExportOutcome) -> VerificationReport:
        """Stream, parse and count every object (``verify: deep``)."""
        self.log.info(
            f"{outcome.config.name}: deep verification of {len(outcome.stored)} object(s)"
        )
        return verify_objects(
            self.s3_client,
            [(obj.bucket, obj.key) for obj in outcome.export.objects],
            outcome.exported_columns,
            compression=outcome.export.compression,
        )

    def _dataset_lock(self, dataset_id: str) -> threading.Lock:
        with self._lock:
            return self._dataset_locks.setdefault(dataset_id, threading.Lock())

    def acting_user(self) -> DomoUser | None:
        """The Domo user the token acts as (read once per runner)."""
        with self._lock:
            if not self._user_known:
                self._user = self.client.get_me()
                self._user_known = True
            return self._user

    def _check_destination(self, config: ExportConfig) -> DestinationReport:
        """The guard, before any call to Domo: once per bucket, region and allowance in a step
        (a bucket refused is checked again, and refused with this export's name)."""
        key = (config.bucket, config.region, config.allow_public_destination)
        with self._guard_lock:
            report = self._destinations.get(key)
            if report is None:
                report = check_destination(
                    self.s3_client,
                    config.bucket,
                    config.region,
                    allow_public=config.allow_public_destination,
                    export_name=config.name,
                )
                self._destinations[key] = report
        if not report.is_private:
            self.log.warning(
                f"{config.name}: bucket {config.bucket} may be public (Public Access Block fully on: "
                f"{report.public_access_blocked}, public policy: {report.policy_public}); exporting "
                "because the catalog sets allow_public_destination: true"
            )
        return report

    def _start(
        self, config: ExportConfig, partition_key: str | None, started_here: ResumeLookup
    ) -> tuple[ExportStart, tuple[Export, ...]]:
        """Start an export, or attach to the one this asset already has running.

        Returns:
            The start, and the DataSet's exports as listed just before it (its history).
        """
        waited_for: list[str] = []
        for _ in range(MAX_START_ATTEMPTS):
            history = self.client.list_exports(config.dataset_id)
            running = latest_active(history)
            start = None
            if running is None:
                try:
                    request = self._request(config, partition_key)
                    start = self.client.start_export(config.dataset_id, request, listed=history)
                except DomoExportInProgressError as exc:
                    # The client listed the DataSet's exports to name the running one.
                    running = exc.active_export
                    if running is None:
                        continue
                else:
                    if start.outcome is not StartOutcome.ALREADY_RUNNING:
                        self.announce(
                            f"{config.name}: Domo export {start.export.export_id} {start.outcome.value}"
                        )
                        return start, history
                    running = start.export
            # Read the registry only now: a concurrent run may have just recorded this export.
            if running.export_id == started_here():
                self.announce(
                    f"{config.name}: attaching to Domo export {running.export_id}, started for this asset earlier"
                )
                return ExportStart(running, StartOutcome.ATTACHED), history
            self._wait_for_other(config, running)
            waited_for.append(running.export_id)
        raise DomoExportInProgressError(
            f"{config.name}: DataSet {config.dataset_id} had another export running at each of "
            f"{MAX_START_ATTEMPTS} attempts to start one (waited for "
            f"{', '.join(dict.fromkeys(waited_for)) or 'none'})",
            None,
            active_export_id=waited_for[-1] if waited_for else "",
        )

    def _request(self, config: ExportConfig, partition_key: str | None) -> ExportRequest:
        provider = self.credentials
        if config.credentials is not None:
            settings = config.credentials
            provider = provider.with_settings(
                settings.mode, settings.role_arn, settings.external_id, settings.duration_seconds
            )
        return ExportRequest(
            credentials=provider.for_export(config.name),
            kms_key_id=config.kms_key_id,
            bucket=config.bucket,
            path=config.export_path(partition_key),
            region=config.region,
            query=config.to_query(partition_key),
            include_bom=config.include_bom,
            use_cache=config.use_cache,
        )

    def _wait_for_other(self, config: ExportConfig, running: Export) -> None:
        """Wait for an export this asset did not start; its own outcome does not matter here."""
        export_id = running.export_id
        self.log.info(
            f"{config.name}: DataSet {config.dataset_id} has export {export_id} running (not this "
            "asset's); waiting for it to end before starting this one"
        )
        try:
            self.client.wait_for_export(
                config.dataset_id, export_id, self.schedule, stop=self.stop, current=running
            )
        except DomoError as exc:
            if self.stop.is_set():
                raise
            self.log.info(f"{config.name}: the other export {export_id} ended: {exc.summary}")

    def _wait(self, config: ExportConfig, current: Export, expected: float | None) -> Export:
        """Poll an export of this asset until it ends, logging each change to another
        unfinished status (the end shows as the materialization, or as the failure)."""
        export_id = current.export_id
        last_status = [current.status]

        def progress(export: Export, elapsed: float) -> None:
            if export.status is not last_status[-1] and export.is_active:
                self.log.info(
                    f"{config.name}: export {export_id} is {export.status.value} after {elapsed:.1f} s"
                )
            last_status.append(export.status)

        return self.client.wait_for_export(
            config.dataset_id,
            export_id,
            self.schedule,
            stop=self.stop,
            on_poll=progress,
            expected_seconds=expected,
            current=current,
        )
