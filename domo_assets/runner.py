"""Runs one catalog export end to end: access check, start (or attach), poll, verify, count.

Plain Python over the client and an S3 client: no Dagster here, so the asset layer only turns
an :class:`ExportOutcome` into events, and benchmarks or scripts can drive exports directly.

One active export per DataSet (Domo's rule) is respected like this:

* the ledger (``ExportLedger``, kept by the asset layer in the Dagster instance) names the export
  this asset last started, for which request: if Domo still runs it, or it ended in success while
  nobody watched and the DataSet has not changed since it started, attach to it;
* another export is active (another asset's query, another run, another tool): Domo's API does
  not say which request it serves, so it is waited for, then this asset's export starts; an
  active export older than ``stale_after`` is not waited for (Domo's history can keep exports
  that never finished), a wait ends when the export it waits for turns that old, and if Domo
  refuses to start because of it, the asset fails naming it. An export's age is counted from
  Domo's start time, or, for an entry Domo lists without one (a ghost entry, or one without a
  status, read as queued), from when this project first saw it listed: ``ExportSightings``,
  kept by the asset layer in the Dagster instance, so that the count goes on across runs;
* Domo refuses the POST because an export is running (or answers with the running export):
  the same waiting, bounded by ``MAX_START_ATTEMPTS``.

Waiting is bounded: an attempt waits at most ``schedule.timeout`` (``poll_timeout``) in all, and
this asset's own export fails once it has run longer than that since it started, across every
attempt and run that attached to it.

Once the export has succeeded, it is verified against this asset's request before anything is
recorded (``provenance.settle``: where it lies, or a copy of a same-query export; then its header
and row count); ``_manifest.json`` is written only when every check passed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.catalog import ExportConfig
from domo_assets.domo.client import DomoClient, ExportStart, PollSchedule, StartOutcome
from domo_assets.domo.errors import (
    DomoExportFailedError,
    DomoExportInProgressError,
    DomoExportTimeoutError,
    DomoStaleExportError,
)
from domo_assets.domo.models import (
    DataSetColumn,
    DataSetMetadata,
    DomoUser,
    Export,
    ExportRequest,
    ExportStatus,
)
from domo_assets.domo.polling import DEFAULT_STALE_EXPORT_AFTER, expected_duration
from domo_assets.outcome import ExportOutcome
from domo_assets.s3.credentials import (
    CredentialGrant,
    CredentialProvider,
    CredentialsMode,
    ExportScope,
)
from domo_assets.s3.guard import DestinationReport, check_destination
from domo_assets.s3.kms import (
    BUCKET_DEFAULT_SOURCE,
    EXPORT_SOURCE,
    ExportKey,
    KeyResolver,
    role_account,
)
from domo_assets.s3.landing import write_redshift_manifest
from domo_assets.s3.manifest import write_manifest
from domo_assets.s3.provenance import settle
from domo_assets.s3.storage import StoredObject, inspect_objects
from domo_assets.s3.target import ExportTarget
from domo_assets.s3.verify import (
    HeaderRead,
    MalformedCsvError,
    VerificationReport,
    read_header,
    verify_objects,
)
from domo_assets.verdicts import verified

# Each attempt waits for a foreign export to end; a busy DataSet may need a few.
MAX_START_ATTEMPTS = 5
# Fresh exports (their start just read) are polled around their expected end.
_FRESH = (StartOutcome.STARTED, StartOutcome.RECOVERED)


@dataclass(frozen=True)
class StartRecord:
    """An export an asset started, as its ledger recorded it.

    Attributes:
        export_id: Domo's export id.
        request: The fingerprint of the request it was started for (``ExportTarget``).
        recorded_at: When it was recorded (just after Domo accepted it).
        run_id: The run that started it, when known.
    """

    export_id: str
    request: str
    recorded_at: datetime
    run_id: str | None = None


class ExportLedger(Protocol):
    """Where the exports one asset (and partition) started are recorded, across processes."""

    def last_started(self) -> StartRecord | None:
        """The export this asset last started, if any."""
        ...

    def record_start(self, export: Export, request: str) -> None:
        """Record, at once, that this asset started ``export`` for ``request``."""
        ...

    def last_materialized(self) -> str | None:
        """The export id of the asset's latest materialization, if any."""
        ...

    def request_of(self, export_id: str) -> str | None:
        """The request fingerprint this asset recorded when it started ``export_id``, if it did."""
        ...


class NoLedger:
    """A ledger that remembers nothing (scripts driving one export; never the assets)."""

    def last_started(self) -> StartRecord | None:
        """Nothing was recorded."""
        return None

    def record_start(self, export: Export, request: str) -> None:
        """Forget it."""

    def last_materialized(self) -> str | None:
        """Nothing was materialized."""
        return None

    def request_of(self, export_id: str) -> str | None:
        """Nothing was started."""
        return None


class ExportSightings(Protocol):
    """When this project first saw each export a DataSet lists as active without a start time,
    across processes: the age of such an export is counted from then."""

    def first_seen(
        self, dataset_id: str, export_ids: Collection[str], now: datetime
    ) -> Mapping[str, datetime]:
        """When each of ``export_ids`` was first seen; those never seen before are recorded as
        first seen ``now``.

        Args:
            dataset_id: The DataSet whose export list was read.
            export_ids: Every export the list shows as active without a start time (the record
                may forget the others).
            now: The current time.
        """
        ...


class MemorySightings:
    """Sightings kept by this object only (scripts driving exports; never the assets, whose
    sightings must outlive the run)."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def first_seen(
        self, dataset_id: str, export_ids: Collection[str], now: datetime
    ) -> Mapping[str, datetime]:
        """When each export was first seen by this object (``now`` for a new one)."""
        with self._lock:
            return {i: self._seen.setdefault(i, now) for i in export_ids}


class ExportRunner:
    """Drives exports for one step.

    Args:
        client: The Domo client.
        s3_client: A boto3 S3 client for reading (and copying) what landed.
        credentials: Where the credentials handed to Domo come from.
        schedule: How often to poll, and ``timeout``: the longest wait of an attempt, and the
            longest an export of this asset may run.
        log: Progress log.
        stop: Set when the run is terminated; polling stops promptly.
        announce: Receives each export's start line ("<name>: Domo export <id> started");
            ``log.info`` by default. A caller driving many exports may gather them.
        stale_after: Seconds after which an export still listed as active is stale.
        sightings: When exports listed without a start time were first seen (read once per
            DataSet, then only for an entry this runner has not seen yet).
        clock: Monotonic clock for this attempt's waiting budget.
        now: Wall clock, compared with Domo's start times.
        keys: Resolves KMS keys to the key ARNs session policies name; by default with the
            credentials' boto3 session.
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
        stale_after: float = DEFAULT_STALE_EXPORT_AFTER,
        sightings: ExportSightings | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        keys: KeyResolver | None = None,
    ):
        self.client = client
        self.s3_client = s3_client
        self.credentials = credentials
        self.keys = keys or KeyResolver(credentials.session)
        self.schedule = schedule
        self.log = log
        self.stop = stop or threading.Event()
        self.announce = announce or log.info
        self.stale_after = stale_after
        self.sightings = sightings or MemorySightings()
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._user: DomoUser | None = None
        self._user_known = False
        self._dataset_locks: dict[str, threading.Lock] = {}
        self._guard_lock = threading.Lock()
        self._destinations: dict[tuple[str, str, bool, str | None], DestinationReport] = {}
        self._stale_noted: set[str] = set()
        # When each export listed without a start time was first seen, by export id.
        self._first_seen: dict[str, datetime] = {}

    def run(
        self,
        config: ExportConfig,
        *,
        partition_key: str | None = None,
        ledger: ExportLedger | None = None,
    ) -> ExportOutcome:
        """Export one catalog entry and verify the result against its request.

        Args:
            config: The catalog entry.
            partition_key: The partition to export, for a partitioned entry.
            ledger: Where this asset's started exports are recorded and read back.

        Returns:
            The outcome, with a manifest only when every check passed (``verdicts.verified``).

        Raises:
            CredentialsError: Domo cannot be handed credentials the settings and AWS allow:
                raised before any call to Domo where the settings show it, and otherwise (STS
                refused GetFederationToken) before the export request.
            DomoError: Access errors (before any export is attempted), a failed, stale or
                timed-out export, a start that kept being refused, or an export made for
                another request (``DomoForeignExportError``).
        """
        ledger = ledger or NoLedger()
        deadline = self._clock() + self.schedule.timeout
        destination = self._check_destination(config)
        key = self._export_key(config, destination)
        # What the credentials need (settings, AWS's bounds) is checked before any call to Domo.
        self._provider(config).check(
            config.name,
            _scope(config, config.export_path(partition_key), key),
            self.schedule.timeout,
        )
        dataset = self.client.get_dataset(config.dataset_id)
        columns = self.client.get_columns(config.dataset_id)
        if config.partition is not None:
            types = {c.name: c.type for c in columns}
            config.partition.check_column_type(types.get(config.partition.column), config.name)
        target = config.to_target(partition_key, [c.name for c in columns])
        # Exports of one DataSet in this step go one after another (Domo runs one at a time),
        # verification and manifest included: the next export of the DataSet may be handed this
        # one back, and its manifest is how it is recognised.
        with self._dataset_lock(config.dataset_id):
            start, expected, grant = self._start(config, target, dataset, ledger, deadline, key)
            export = start.export
            if export.is_active:
                remaining = self._expected_remaining(start, expected, ledger)
                export = self._wait(config, export, remaining, ledger, deadline)
            outcome = self._inspect(
                config, target, dataset, columns, destination, start, export, ledger
            )
            outcome = replace(outcome, credentials=grant, kms_key=key)
            if not verified(outcome):
                return outcome
            return self._write_manifests(outcome)

    def _write_manifests(self, outcome: ExportOutcome) -> ExportOutcome:
        """Write ``_manifest.json`` and the Redshift manifest beside a verified export's files.

        Both name only the export's own files: no reader is sent to them until the export is
        recorded and published. An export Domo handed back keeps the manifest it has.
        """
        manifest = outcome.to_manifest()
        return replace(
            outcome,
            manifest_uri=write_manifest(
                self.s3_client, manifest, keep_existing=outcome.reused_previous_export
            ),
            redshift_manifest_uri=write_redshift_manifest(self.s3_client, manifest),
        )

    def _expected_remaining(
        self, start: ExportStart, expected: float | None, ledger: ExportLedger
    ) -> float | None:
        """Seconds until the export is expected to end: all of ``expected`` (what the DataSet's
        recent exports took) for a fresh export, what is left of it for one attached to."""
        if expected is None or start.outcome in _FRESH:
            return expected
        age = self._age(start.export, ledger)
        if age is None or age >= expected:
            return None
        return expected - age

    def _inspect(
        self,
        config: ExportConfig,
        target: ExportTarget,
        dataset: DataSetMetadata,
        columns: tuple[DataSetColumn, ...],
        destination: DestinationReport,
        start: ExportStart,
        export: Export,
        ledger: ExportLedger,
    ) -> ExportOutcome:
        """Settle whose files a successful export contributes, then read what the checks need."""
        returned_previous = start.outcome is StartOutcome.REUSED_PREVIOUS
        provenance = settle(
            self.s3_client,
            target,
            export,
            returned_previous=returned_previous,
            export_name=config.name,
            started_for=ledger.request_of(export.export_id) if returned_previous else None,
            kms_key_id=config.kms_key_id,
        )
        if provenance.copied_from:
            self.log.info(
                f"{config.name}: Domo returned export {export.export_id}, made for the same "
                f"query under another prefix; copied its {len(provenance.objects)} object(s) "
                f"to {target.prefix_uri}{export.export_id}/"
            )
        stored = inspect_objects(self.s3_client, provenance.objects)
        header, header_problem = self._read_header(stored, export.compression)
        expected = (
            None
            if config.group_by
            else self.client.count_rows(config.dataset_id, target.query.where)
        )
        outcome = ExportOutcome(
            config=config,
            target=target,
            dataset=dataset,
            columns=columns,
            export=export,
            outcome=start.outcome,
            objects=provenance.objects,
            stored=stored,
            expected_rows=expected,
            destination=destination,
            header=header,
            header_problem=header_problem,
            copied_from=provenance.copied_from,
            acting_user=self.acting_user(),
        )
        if config.verify == "deep" and stored and all(s.ok for s in stored):
            outcome = replace(outcome, verification=self._verify(outcome))
        return outcome

    def _read_header(
        self, stored: tuple[StoredObject, ...], compression: str | None
    ) -> tuple[HeaderRead | None, str | None]:
        """The first object's header row, or why it could not be read."""
        if not stored or not stored[0].ok:
            return None, "the first object is missing or empty (see s3_objects)"
        first = stored[0].reported
        try:
            return read_header(
                self.s3_client, first.bucket, first.key, compression=compression
            ), None
        except (MalformedCsvError, ClientError, BotoCoreError) as exc:
            return None, f"{first.uri}: {exc}"

    def _verify(self, outcome: ExportOutcome) -> VerificationReport:
        """Stream, parse and count every object (``verify: deep``)."""
        self.log.info(
            f"{outcome.config.name}: deep verification of {len(outcome.stored)} object(s)"
        )
        return verify_objects(
            self.s3_client,
            [(obj.bucket, obj.key) for obj in outcome.objects],
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
        key = (
            config.bucket,
            config.region,
            config.allow_public_destination,
            config.bucket_owner,
        )
        with self._guard_lock:
            report = self._destinations.get(key)
            if report is None:
                report = check_destination(
                    self.s3_client,
                    config.bucket,
                    config.region,
                    allow_public=config.allow_public_destination,
                    export_name=config.name,
                    bucket_owner=config.bucket_owner,
                )
                self._destinations[key] = report
        if not report.is_private:
            self.log.warning(
                f"{config.name}: bucket {config.bucket} may be public (Public Access Block fully on: "
                f"{report.public_access_blocked}, public policy: {report.policy_public}); exporting "
                "because the catalog sets allow_public_destination: true"
            )
        return report

    def _export_key(self, config: ExportConfig, destination: DestinationReport) -> ExportKey | None:
        """The KMS key Domo's files will be encrypted with, as its key ARN: the export's
        ``kms_key_id``, else the bucket's default SSE-KMS key; None when neither applies."""
        if config.kms_key_id is not None:
            given, source = config.kms_key_id, EXPORT_SOURCE
        elif destination.default_kms_key is not None:
            given, source = destination.default_kms_key, BUCKET_DEFAULT_SOURCE
        else:
            return None
        return self.keys.resolve(given, config.region, source=source, export_name=config.name)

    def _domo_kms_key(self, provider: CredentialProvider, key: ExportKey | None) -> str | None:
        """``awsKmsKey``: the export's own key (a bucket's default applies without it), as a key
        id when Domo's credentials are of the key's account, else as its key ARN."""
        if key is None or key.source != EXPORT_SOURCE:
            return None
        minted_by_role = provider.mode in (CredentialsMode.SCOPED, CredentialsMode.ASSUME_ROLE)
        writer = (role_account(provider.role_arn) if minted_by_role else None) or (
            self.keys.account()
        )
        return key.for_writer(writer)

    # -- starting --------------------------------------------------------------------------

    def _start(
        self,
        config: ExportConfig,
        target: ExportTarget,
        dataset: DataSetMetadata,
        ledger: ExportLedger,
        deadline: float,
        key: ExportKey | None,
    ) -> tuple[ExportStart, float | None, CredentialGrant | None]:
        """Start an export, or attach to the one this asset already has (``key``: the KMS key
        the files are encrypted with).

        Returns:
            The start; how long this request's exports took recently (seconds, from the
            DataSet's exports as listed just before it: ``polling.expected_duration``), or None
            without such history; and the credentials handed to Domo (None when no request was
            sent: attached).
        """
        waited_for: list[str] = []
        for _ in range(MAX_START_ATTEMPTS):
            history = self.client.list_exports(config.dataset_id)
            self._sight(config.dataset_id, history)
            expected = expected_duration(history, config.bucket, target.path)
            own = self._own_export(target, dataset, history, ledger)
            if own is not None:
                return self._attached(config, own), expected, None
            running = self._running(config, history)
            if running is None:
                request, grant = self._request(config, target, expected, key)
                try:
                    start = self.client.start_export(config.dataset_id, request, listed=history)
                except DomoExportInProgressError as exc:
                    # The client listed the DataSet's exports to name the running one.
                    running = exc.active_export
                    if running is None:
                        continue
                    self._refuse_if_stale(config, running, history)
                else:
                    if start.outcome is not StartOutcome.ALREADY_RUNNING:
                        if start.outcome in _FRESH:
                            ledger.record_start(start.export, target.fingerprint)
                        self.announce(
                            f"{config.name}: Domo export {start.export.export_id} {start.outcome.value}"
                        )
                        return start, expected, grant
                    running = start.export
                    self._refuse_if_stale(config, running, history)
            # Read the ledger again: a concurrent run of this asset may have just recorded it.
            record = ledger.last_started()
            if _records(record, running, target):
                return self._attached(config, running), expected, None
            self._wait_for_other(config, running, deadline)
            waited_for.append(running.export_id)
        raise DomoExportInProgressError(
            f"DataSet {config.dataset_id} had another export running at each of "
            f"{MAX_START_ATTEMPTS} attempts to start one (waited for "
            f"{', '.join(dict.fromkeys(waited_for)) or 'none'})",
            None,
            active_export_id=waited_for[-1] if waited_for else "",
        )

    def _attached(self, config: ExportConfig, export: Export) -> ExportStart:
        state = "still running" if export.is_active else "finished while no run watched it"
        self.announce(
            f"{config.name}: attaching to Domo export {export.export_id}, started for this "
            f"asset earlier ({state})"
        )
        return ExportStart(export, StartOutcome.ATTACHED)

    def _own_export(
        self,
        target: ExportTarget,
        dataset: DataSetMetadata,
        history: tuple[Export, ...],
        ledger: ExportLedger,
    ) -> Export | None:
        """The export this asset started for this very request, if it can still serve.

        It serves while Domo runs it, or once it succeeded if it was never materialized and the
        DataSet has not changed since it started (its data is then still current). The ledger
        is read only when the DataSet lists an export that could serve: each read queues for
        the instance's storage with every other export's and the step's event writes (on
        SQLite, one lock per process), and a first export, or one of a changed DataSet, needs
        none.
        """
        if not any(_could_serve(dataset, export) for export in history):
            return None
        record = ledger.last_started()
        if record is None or record.request != target.fingerprint:
            return None
        found = next((e for e in history if e.export_id == record.export_id), None)
        if found is None or not _could_serve(dataset, found):
            return None
        if found.is_active:
            return found
        return found if ledger.last_materialized() != found.export_id else None

    def _running(self, config: ExportConfig, history: tuple[Export, ...]) -> Export | None:
        """The latest active export of the DataSet, stale ones aside (each noted once)."""
        running = None
        for export in history:
            if not export.is_active:
                continue
            age = self._age(export)
            if age is not None and age > self.stale_after:
                self._note_stale(config, export, age)
                continue
            running = export
        return running

    def _note_stale(self, config: ExportConfig, export: Export, age: float) -> None:
        with self._lock:
            if export.export_id in self._stale_noted:
                return
            self._stale_noted.add(export.export_id)
        self.log.warning(
            f"{config.name}: not waiting for export {export.export_id} of DataSet "
            f"{config.dataset_id}: listed as '{export.status_text}', {_since(export, age)}, "
            f"longer ago than stale_export_after ({_duration(self.stale_after)}); Domo's "
            "history can keep exports that never finished"
        )

    def _refuse_if_stale(
        self, config: ExportConfig, running: Export, history: tuple[Export, ...]
    ) -> None:
        """Domo refuses a new export because of an export too old to still be running (one
        named in the refusal, or listed in ``history``, the list just read)."""
        self._sight(config.dataset_id, (*history, running))
        age = self._age(running)
        if age is not None and age > self.stale_after:
            raise DomoStaleExportError(
                f"Domo refuses to start an export of DataSet {config.dataset_id} "
                f"because it counts export {running.export_id} as '{running.status_text}', "
                f"{_since(running, age)} (stale_export_after {_duration(self.stale_after)})"
            )

    def _request(
        self,
        config: ExportConfig,
        target: ExportTarget,
        expected: float | None,
        key: ExportKey | None,
    ) -> tuple[ExportRequest, CredentialGrant]:
        """The export request, with credentials minted for it (living about as long as the
        ``expected`` seconds the DataSet's recent exports took, or the poll timeout, and allowed
        to use ``key``)."""
        provider = self._provider(config)
        grant = provider.grant(
            config.name, _scope(config, target.path, key), expected, self.schedule.timeout
        )
        if grant.warning:
            self.log.warning(grant.warning)
        request = ExportRequest(
            credentials=grant.credentials,
            kms_key_id=self._domo_kms_key(provider, key),
            bucket=config.bucket,
            path=target.path,
            region=config.region,
            query=target.query,
            include_bom=config.include_bom,
            use_cache=config.use_cache,
        )
        return request, grant

    def _provider(self, config: ExportConfig) -> CredentialProvider:
        """The credentials provider of one export: the resource's, narrowed by the entry's
        ``credentials:`` (which may not widen it: ``CredentialsError`` names the field)."""
        if config.credentials is None:
            return self.credentials
        return self.credentials.with_settings(config.name, config.credentials.to_overrides())

    # -- waiting ---------------------------------------------------------------------------

    def _wait_for_other(self, config: ExportConfig, running: Export, deadline: float) -> None:
        """Wait for an export this asset did not start; its own outcome does not matter here.

        The wait ends when the export ends, or when it turns stale (older than ``stale_after``:
        the next attempt leaves it aside), at the latest at this attempt's deadline.
        """
        export_id = running.export_id
        remaining = deadline - self._clock()
        age = self._age(running)
        until_stale = None if age is None else self.stale_after - age
        wait = remaining if until_stale is None else min(remaining, until_stale)
        self.log.info(
            f"{config.name}: DataSet {config.dataset_id} has export {export_id} running (not this "
            "asset's); waiting for it to end before starting this one"
            + (
                f" (at most {_duration(max(wait, 0.0))}: then it is stale)"
                if wait != remaining
                else ""
            )
        )
        try:
            ended = self.client.wait_for_export(
                config.dataset_id,
                export_id,
                replace(self.schedule, timeout=max(wait, 0.0)),
                stop=self.stop,
                current=running,
            )
        except DomoExportFailedError as exc:
            self.log.info(f"{config.name}: the other export {export_id} ended: {exc.summary}")
            return
        except DomoExportTimeoutError:
            if wait < remaining:
                return  # it turned stale: the next attempt leaves it aside
            age = self._age(running)
            raise DomoExportTimeoutError(
                f"DataSet {config.dataset_id}'s export {export_id} (not this "
                f"asset's) was still running when this attempt had waited "
                f"{_duration(self.schedule.timeout)} (poll_timeout) in all"
                + (f"; it {_since(running, age)}" if age is not None else "")
                + f". Domo runs one export per DataSet at a time, so {config.name}'s export "
                "could not start",
                hint="Materialize again once it has ended, or raise poll_timeout",
            ) from None
        self.log.info(f"{config.name}: the other export {export_id} ended ({ended.status_text})")

    def _wait(
        self,
        config: ExportConfig,
        current: Export,
        expected: float | None,
        ledger: ExportLedger,
        deadline: float,
    ) -> Export:
        """Poll this asset's export until it ends, logging each change to another unfinished
        status (the end shows as the materialization, or as the failure).

        The wait ends at this attempt's deadline, or when the export has run ``poll_timeout``
        since it started, whichever comes first; an export older than ``stale_after`` fails.
        """
        export_id = current.export_id
        age = self._age(current, ledger) or 0.0
        if age > self.stale_after:
            raise DomoStaleExportError(
                f"Domo export {export_id} of DataSet {config.dataset_id} has been "
                f"'{current.status_text}' for {_duration(age)}, longer than "
                f"stale_export_after ({_duration(self.stale_after)})"
            )
        remaining = min(deadline - self._clock(), self.schedule.timeout - age)
        last_status = [current.status]

        def progress(export: Export, elapsed: float) -> None:
            if export.status is not last_status[-1] and export.is_active:
                self.log.info(
                    f"{config.name}: export {export_id} is {export.status.value} after {elapsed:.1f} s"
                )
            last_status.append(export.status)

        try:
            return self.client.wait_for_export(
                config.dataset_id,
                export_id,
                replace(self.schedule, timeout=max(remaining, 0.0)),
                stop=self.stop,
                on_poll=progress,
                expected_seconds=expected,
                current=current,
            )
        except DomoExportTimeoutError:
            ran = self._age(current, ledger) or 0.0
            raise DomoExportTimeoutError(
                f"Domo export {export_id} of DataSet {config.dataset_id} was still "
                f"'{last_status[-1].value}' {_duration(ran)} after it started (poll_timeout "
                f"{_duration(self.schedule.timeout)}, across every attempt that waited for it)",
            ) from None

    def _sight(self, dataset_id: str, exports: Iterable[Export]) -> None:
        """Learn when the active exports listed without a start time were first seen: asked of
        the sightings only when one of them is new to this runner (once per DataSet, as a rule),
        handing them every such export listed, so that they record the new ones."""
        undated = {e.export_id for e in exports if e.is_active and e.started is None}
        with self._lock:
            if undated <= self._first_seen.keys():
                return
        seen = self.sightings.first_seen(dataset_id, sorted(undated), self._now())
        with self._lock:
            for export_id, when in seen.items():
                self._first_seen.setdefault(export_id, when)

    def _age(self, export: Export, ledger: ExportLedger | None = None) -> float | None:
        """Seconds since the export started: Domo's start time, else when this asset's ledger
        recorded it, else when it was first seen listed (``_sight``)."""
        started = export.started
        if started is None and ledger is not None:
            record = ledger.last_started()
            if record is not None and record.export_id == export.export_id:
                started = record.recorded_at
        if started is None:
            with self._lock:
                started = self._first_seen.get(export.export_id)
        if started is None:
            return None
        return max((self._now() - started).total_seconds(), 0.0)


def _records(record: StartRecord | None, export: Export, target: ExportTarget) -> bool:
    """Whether the ledger's record is this export, started for this request."""
    return (
        record is not None
        and record.export_id == export.export_id
        and record.request == target.fingerprint
    )


def _could_serve(dataset: DataSetMetadata, export: Export) -> bool:
    """Whether a listed export could serve a request for the DataSet's current data (if it is
    this asset's own): Domo still runs it, or it succeeded after the data last changed."""
    if export.is_active:
        return True
    return export.status is ExportStatus.SUCCESS and _unchanged_since(dataset, export)


def _unchanged_since(dataset: DataSetMetadata, export: Export) -> bool:
    """Whether the DataSet's data is known not to have changed since the export started."""
    if dataset.last_updated is None or export.started is None:
        return False
    return dataset.last_updated <= export.started


def _since(export: Export, age: float) -> str:
    """Where an export's age comes from, for messages: ``started 3 d ago``, or ``first seen 7 s
    ago (Domo lists no start time)``."""
    if export.started is None:
        return f"first seen {_duration(age)} ago (Domo lists no start time)"
    return f"started {_duration(age)} ago"


def _duration(seconds: float) -> str:
    """A duration for messages: ``42 s``, ``12 min``, ``3.5 h``, ``3 d``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def _scope(config: ExportConfig, path: str, key: ExportKey | None) -> ExportScope:
    """Where an export (of `path`, its partition's prefix included) may write, in which
    account, and with which KMS key (its ARN, resolved)."""
    return ExportScope(
        config.bucket,
        path,
        config.region,
        kms_key_arn=key.arn if key is not None else None,
        bucket_owner=config.bucket_owner,
    )
