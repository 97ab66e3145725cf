"""One step's exports: driven concurrently, recorded in the ledger, turned into events.

``DomoResource.export_and_poll`` (and through it every export asset, built-in or decorated with
``domo_export_assets``) runs here: the exports of the assets a step selected, found from their
specs' ``DomoMetadataSet``, each driven by the runner in a thread of its own (they spend their
time waiting on Domo). A verified export becomes a ``MaterializeResult`` with its check results;
a refused one, its check results alone; failures end the step with one ``Failure`` naming each.
Imported when a run first exports (it pulls in requests and boto3; loading the code location
does not).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from domo_assets.catalog import ExportConfig
from domo_assets.checks import check_results
from domo_assets.domo.client import DomoClient
from domo_assets.domo.errors import is_permanent
from domo_assets.domo.polling import PollSchedule
from domo_assets.ledger import InstanceLedger, LatestMaterializations, Materialized
from domo_assets.metadata import materialization_metadata
from domo_assets.outcome import ExportOutcome
from domo_assets.publish import GlueClients, Publication, new_glue_clients, publish
from domo_assets.runner import ExportRunner
from domo_assets.s3.credentials import CredentialProvider
from domo_assets.s3.landing import LandingError, LatestPointer, pointer_order, read_latest
from domo_assets.s3.manifest import ExportManifest, read_manifest_at
from domo_assets.s3.owner import expect_bucket_owners, owners_of
from domo_assets.sightings import InstanceSightings
from domo_assets.translator import PARQUET_ASSET_KEY, dataset_node, export_config
from domo_assets.verdicts import refused_for_good, verdicts, verified

# Start lines of a step's exports wait at most this long to be logged together: Dagster stores
# each log line as an event, one by one, so 100 starts would otherwise be 100 events.
START_LINES_INTERVAL = 1.0
# On run termination, publications under way (a few S3 and Glue calls) get this long to finish.
PUBLISH_GRACE_SECONDS = 30.0
# The step failure's metadata: every failed export with its reason, and the permanent ones.
FAILED_EXPORTS_KEY = "failed_exports"
PERMANENT_FAILURES_KEY = "permanent_failures"
REFUSED_CHECKS_KEY = "refused_checks"
# Run tag (suffixed with the step's key) naming the exports a step failed permanently.
PERMANENT_FAILURES_TAG_PREFIX = "domo_assets/permanent_failures."


@dataclass(frozen=True)
class ExportTools:
    """What a step's exports use, made by the Domo resource and its nested resources (this
    module imports no resource: ``DomoResource.export_and_poll`` hands these over).

    Attributes:
        client: The Domo client.
        s3_client: A boto3 S3 client with the worker's credentials.
        credentials: Chooses the credentials Domo is handed.
        schedule: The status-read schedule.
        stale_after: Seconds after which an export Domo still lists as running is stale.
        max_concurrent_exports: Exports the step drives at once.
    """

    client: DomoClient
    s3_client: Any
    credentials: CredentialProvider
    schedule: PollSchedule
    stale_after: float
    max_concurrent_exports: int


def export_selected(
    context: AssetExecutionContext, tools: ExportTools
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Export every asset the step selected, as ``DomoResource.export_and_poll`` documents."""
    specs = {
        spec.key: spec
        for spec in context.assets_def.specs
        if spec.key in context.selected_asset_keys
    }
    exports = {key: export_config(spec) for key, spec in specs.items()}
    # An export spec of each DataSet: its dependency is the DataSet's node, where sightings go.
    dataset_specs = {exports[key].dataset_id: spec for key, spec in specs.items()}
    s3_client = tools.s3_client
    # Every call of the step's S3 client to a bucket with a bucket_owner passes it.
    expect_bucket_owners(s3_client, owners_of(exports.values()))
    start_lines = StartLines()
    runner = ExportRunner(
        client=tools.client,
        s3_client=s3_client,
        credentials=tools.credentials,
        schedule=tools.schedule,
        log=context.log,
        announce=start_lines.add,
        stale_after=tools.stale_after,
        sightings=InstanceSightings(
            context.instance, lambda dataset_id: dataset_node(dataset_specs[dataset_id])
        ),
    )
    # A backfill's run names its partition as a one-key range: has_partition_key is False there.
    partitioned = context.assets_def.partitions_def is not None
    partition_key = context.partition_key if partitioned else None
    publisher = Publisher(
        context, s3_client, new_glue_clients(), start_lines, partition_key, _parquet_keys(specs)
    )
    yield from run_exports(
        context,
        runner,
        exports,
        tools.max_concurrent_exports,
        start_lines,
        partition_key,
        publisher,
    )


def run_exports(
    context: AssetExecutionContext,
    runner: ExportRunner,
    exports: Mapping[AssetKey, ExportConfig],
    max_concurrent_exports: int,
    start_lines: StartLines,
    partition_key: str | None,
    publisher: Publisher,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Drive exports concurrently, yielding each one's result as soon as it is known.

    An export is materialized only when every check passed, then published (pointer, Glue
    table, retention) once Dagster shows the materialization recorded; a refused export records
    nothing (its failed checks are in the failure), so the asset's previous materialization keeps
    its green checks. A failed export does not hide the others: every verified one is
    materialized, then the step fails naming each failure. On a step retry, exports an earlier
    attempt of this run materialized are only published (if they were not), and exports that
    failed for a reason a retry cannot mend (access, configuration, another request's export, a
    spent wait, a wrong header) are not tried again; such failures do not ask for a retry.

    Args:
        context: The step's context.
        runner: Drives one export.
        exports: The exports to drive, by asset key.
        max_concurrent_exports: The most exports driven at once.
        start_lines: Where the runner's start lines gather (the runner's ``announce``);
            logged together at most every ``START_LINES_INTERVAL`` seconds.
        partition_key: The partition to export, for a partitioned asset.
        publisher: Publishes each recorded export.
    """
    keys = {config.name: key for key, config in exports.items()}
    configs = list(exports.values())
    ledgers = {
        c.name: InstanceLedger(
            context.instance, keys[c.name], partition_key, context.run_id, publisher.records
        )
        for c in configs
    }
    failures = StepFailures()
    recorded = _recorded_by_this_run(context, configs, ledgers)
    for name, reason in _permanent_failures_before(context, configs).items():
        failures.add(name, reason, permanent=True)
    pending = [c for c in configs if c.name not in recorded and c.name not in failures.reasons]
    workers = max(1, min(len(pending) + len(recorded), max_concurrent_exports))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="domo-export") as executor:
        exporting: dict[Future[Any], ExportConfig] = {
            executor.submit(
                _export, runner, publisher, config, partition_key, ledgers[config.name]
            ): config
            for config in pending
        }
        publishing: dict[Future[Any], ExportConfig] = {
            executor.submit(
                publisher.publish_recorded, config, recorded[config.name], ledgers[config.name]
            ): config
            for config in configs
            if config.name in recorded
        }
        waiting = set(exporting) | set(publishing)
        # The export whose result was yielded and is not yet handed to a publisher.
        in_flight: tuple[ExportConfig, ExportOutcome] | None = None
        try:
            for future in _completed(waiting, start_lines, context.log):
                config = publishing.get(future) or exporting[future]
                try:
                    done = future.result()
                except Exception as exc:
                    failures.add(config.name, str(exc), permanent=_is_permanent(exc))
                    context.log.error(f"{config.name}: {exc}")
                    continue
                if future in publishing:
                    problem = publisher.report(config, done)
                    if problem is not None:
                        failures.add(config.name, *problem)
                    continue
                if not _recordable(context, config, done, failures):
                    continue
                in_flight = (config, done.outcome)
                yield _result(done.outcome, keys[config.name], runner.client.instance_url)
                # Dagster stores a yielded result's events before it resumes this generator:
                # the materialization is recorded now, and publication may follow it.
                published = executor.submit(
                    publisher.publish_verified, config, done.outcome, ledgers[config.name]
                )
                in_flight = None
                publishing[published] = config
                waiting.add(published)
        except BaseException:
            # Run termination: stop polling at once, let publications under way finish (they
            # follow a recorded materialization: stopping them would leave readers behind it),
            # publish the export whose result Dagster was recording if it did record it, and
            # say where each export stands.
            runner.stop.set()
            wait([f for f in publishing if not f.done()], timeout=PUBLISH_GRACE_SECONDS)
            for future, config in publishing.items():
                if future in waiting:
                    publisher.report_on_termination(config, future)
            if in_flight is not None:
                publisher.publish_on_termination(*in_flight, ledgers[in_flight[0].name])
            executor.shutdown(wait=True, cancel_futures=True)
            start_lines.flush(context.log)
            _log_positions(context, exporting)
            raise
    start_lines.flush(context.log)
    failures.raise_if_any(context, len(configs))


@dataclass(frozen=True)
class Finished:
    """An export the runner finished, with the pointer read right after it was verified.

    Attributes:
        outcome: What the runner found.
        newer: The pointer, when it names an export Domo made after this one (read in the
            export's worker thread, right after verification; None for a refused export).
    """

    outcome: ExportOutcome
    newer: LatestPointer | None = None


def _export(
    runner: ExportRunner,
    publisher: Publisher,
    config: ExportConfig,
    partition_key: str | None,
    ledger: InstanceLedger,
) -> Finished:
    """Drive one export, then (verified) read whether a newer export is published already: in
    the export's worker thread, so the step's main thread, which records every export's events
    one by one, does not also make an S3 call per export before recording it."""
    outcome = runner.run(config, partition_key=partition_key, ledger=ledger)
    if not verified(outcome):
        return Finished(outcome)
    return Finished(outcome, publisher.newer_published(config, outcome))


def _recordable(
    context: AssetExecutionContext,
    config: ExportConfig,
    done: Finished,
    failures: StepFailures,
) -> bool:
    """Whether a finished export is to be recorded: it passed every check (else its verdicts
    go to the failure), and no newer export of the asset is published already (recording it
    would put Dagster's latest materialization behind what readers are pointed at, and a
    concurrent run's retention may remove it). The pointer was read by the export's worker
    right after verification; a run publishing a newer export between that read and this
    record still cannot move the pointer back: publication is conditional and monotonic."""
    outcome = done.outcome
    if not verified(outcome):
        failures.refuse(config.name, outcome)
        context.log.error(f"{config.name}: {failures.reasons[config.name]}")
        return False
    newer = done.newer
    if newer is not None:
        context.log.warning(
            f"{config.name}: Domo export {outcome.export.export_id} was verified but is not "
            f"recorded: {newer.uri} names export {newer.export_id}, which Domo made later and "
            "Dagster has already recorded"
        )
        return False
    return True


class StepFailures:
    """What failed in a step, for the one ``Failure`` that ends it."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}
        self.permanent: dict[str, bool] = {}
        # Each refused export's verdicts: recorded in the failure, not as check results.
        self.refused: dict[str, list[dict[str, Any]]] = {}

    def add(self, name: str, reason: str, permanent: bool) -> None:
        """Record that an export failed, and whether a retry could mend it."""
        self.reasons[name] = reason
        self.permanent[name] = permanent

    def refuse(self, name: str, outcome: ExportOutcome) -> None:
        """Record an export whose checks did not all pass, with every verdict."""
        self.refused[name] = _verdicts_document(outcome)
        self.add(name, _refusal(outcome), permanent=refused_for_good(outcome))

    def raise_if_any(self, context: AssetExecutionContext, exports: int) -> None:
        """End the step with a ``Failure`` naming each failed export, if any failed.

        Raises:
            Failure: Some export failed; it asks for a retry unless every failure is one a
                retry cannot mend, and the permanent ones are remembered for that retry.
        """
        if not self.reasons:
            return
        _remember_permanent_failures(context, self.permanent)
        raise Failure(
            description=f"{len(self.reasons)} of {exports} Domo export(s) failed: "
            + "; ".join(f"{name}: {reason}" for name, reason in self.reasons.items()),
            metadata={
                FAILED_EXPORTS_KEY: MetadataValue.json(self.reasons),
                PERMANENT_FAILURES_KEY: MetadataValue.json(
                    sorted(n for n, p in self.permanent.items() if p)
                ),
                **({REFUSED_CHECKS_KEY: MetadataValue.json(self.refused)} if self.refused else {}),
            },
            # A retry redoes only what failed; it is worth it unless nothing failed for a
            # reason a retry could mend.
            allow_retries=not all(self.permanent.values()),
        )


class Publisher:
    """Publishes a step's recorded exports (``publish.py``), from its worker threads.

    Args:
        context: The step's context (its instance: what Dagster recorded).
        s3_client: A boto3 S3 client with the worker's credentials.
        glue_clients: Gives a region's Glue client.
        lines: Where the one-line summaries gather (logged with the start lines).
        partition_key: The partition exported, for a partitioned asset.
        parquet_keys: The Parquet asset of each export with ``parquet: true``, by export name.
    """

    def __init__(
        self,
        context: AssetExecutionContext,
        s3_client: Any,
        glue_clients: GlueClients,
        lines: StartLines,
        partition_key: str | None,
        parquet_keys: Mapping[str, AssetKey],
    ) -> None:
        self._context = context
        self._s3 = s3_client
        self._glue = glue_clients
        self._lines = lines
        self._partition_key = partition_key
        self._parquet_keys = parquet_keys
        # Every latest-materialization read of the step's publications (and its ledgers) goes
        # through one reader: the reads waiting together are answered by one storage read.
        self.records = LatestMaterializations(context.instance)

    def publish_verified(
        self, config: ExportConfig, outcome: ExportOutcome, ledger: InstanceLedger
    ) -> Publication:
        """Publish an export this step just materialized, once Dagster shows it recorded.

        Raises:
            RecordMissingError: Dagster's latest materialization of the asset is not this
                export (nothing is published: readers stay where Dagster's record is).
        """
        export_id = outcome.export.export_id
        latest = ledger.latest_materialization()
        if latest is None or latest.export_id != export_id:
            raise RecordMissingError(
                f"Dagster's latest materialization of {config.name} names export "
                f"{latest.export_id if latest else None}, not {export_id} that this step just "
                "recorded; nothing was published. Materialize it again"
            )
        if outcome.manifest_uri is None:
            raise RecordMissingError(f"export {export_id} has no manifest to publish from")
        return self._publish(config, outcome.to_manifest(), outcome.manifest_uri, export_id, ledger)

    def newer_published(self, config: ExportConfig, outcome: ExportOutcome) -> LatestPointer | None:
        """The pointer, when it names an export Domo made after this one (by Domo's times): a
        concurrent run of the asset recorded and published it first."""
        try:
            pointer = read_latest(self._s3, config.bucket, outcome.path)
        except LandingError:
            # Publication reads the pointer again and fails the step saying why; the export
            # itself is verified and is recorded.
            return None
        if pointer is None or pointer.export_id == outcome.export.export_id:
            return None
        manifest = outcome.to_manifest()
        return pointer if pointer_order(self._s3, pointer) > manifest.order_key else None

    def report_on_termination(self, config: ExportConfig, future: Future[Any]) -> None:
        """Say, while the run is being terminated, what a publication under way did."""
        if not future.done():
            self._context.log.warning(
                f"{config.name}: publication still under way when the run stopped (after "
                f"{PUBLISH_GRACE_SECONDS:.0f} s); the next materialization of {config.name} "
                "publishes"
            )
        elif future.exception() is not None:
            self._context.log.warning(f"{config.name}: {future.exception()}")
        else:
            problem = self.report(config, future.result())
            if problem is not None:
                self._context.log.warning(f"{config.name}: {problem[0]}")
        self._lines.flush(self._context.log)

    def publish_on_termination(
        self, config: ExportConfig, outcome: ExportOutcome, ledger: InstanceLedger
    ) -> None:
        """Publish, while the run is being terminated, the export whose result Dagster was
        recording when the termination came, if Dagster did record it; never raises (the
        termination goes on), but says what was left."""
        try:
            publication = self.publish_verified(config, outcome, ledger)
        except Exception as exc:
            self._context.log.warning(
                f"{config.name}: export {outcome.export.export_id} not published before the run "
                f"stopped ({exc}); the next materialization of {config.name} publishes"
            )
            return
        self._context.log.info(f"{config.name}: {publication.summary}")

    def publish_recorded(
        self, config: ExportConfig, recorded: Materialized, ledger: InstanceLedger
    ) -> Publication:
        """Publish an export an earlier attempt of this run recorded (it may have failed or
        been stopped before publishing), from its manifest.

        Raises:
            RecordMissingError: The materialization names no manifest that can be read.
        """
        stored = read_manifest_at(self._s3, recorded.manifest_uri)
        if stored is None:
            raise RecordMissingError(
                f"the materialization of export {recorded.export_id} names no readable "
                f"manifest ({recorded.manifest_uri}); materialize {config.name} again"
            )
        return self._publish(config, stored.manifest, stored.uri, recorded.export_id, ledger)

    def report(self, config: ExportConfig, publication: Publication) -> tuple[str, bool] | None:
        """Log a publication's summary; the failure it leaves (reason, permanent), if any."""
        self._lines.add(f"{config.name}: {publication.summary}")
        if publication.table_error is None:
            return None
        self._context.log.warning(f"{config.name}: {publication.table_error}")
        # Missing permissions fail the step after the export is recorded and its pointer
        # moved; an outage only warns (the next materialization registers the table again).
        return (publication.table_error, True) if publication.table_error_permanent else None

    def _publish(
        self,
        config: ExportConfig,
        manifest: ExportManifest,
        manifest_uri: str,
        export_id: str,
        ledger: InstanceLedger,
    ) -> Publication:
        protected = {export_id, *self._parquet_exports(config)}
        recorded = ledger.recorded_exports() if config.keep_exports is not None else None
        return publish(
            config,
            manifest,
            manifest_uri,
            self._s3,
            self._glue,
            protected=protected,
            recorded=recorded,
        )

    def _parquet_exports(self, config: ExportConfig) -> tuple[str, ...]:
        """The export the Parquet asset's latest materialization was written from: retention
        must keep its folder, where the Parquet files lie."""
        key = self._parquet_keys.get(config.name)
        if key is None:
            return ()
        latest = InstanceLedger(
            self._context.instance, key, self._partition_key, self._context.run_id, self.records
        ).latest_materialization()
        return (latest.export_id,) if latest is not None and latest.export_id else ()


class RecordMissingError(Exception):
    """Dagster's record does not show what publication was to follow."""


def _parquet_keys(specs: Mapping[AssetKey, AssetSpec]) -> dict[str, AssetKey]:
    """The Parquet asset of each export that has one, by export name."""
    found = {}
    for spec in specs.values():
        key = spec.metadata.get(PARQUET_ASSET_KEY)
        if key is not None:
            found[export_config(spec).name] = AssetKey.from_user_string(str(key))
    return found


def _recorded_by_this_run(
    context: AssetExecutionContext,
    configs: Sequence[ExportConfig],
    ledgers: Mapping[str, InstanceLedger],
) -> dict[str, Materialized]:
    """On a step retry, the exports an earlier attempt of this run materialized: they are not
    exported again (Dagster keeps those materializations as the run's outputs, so downstream
    steps still see them), only published."""
    if context.retry_number == 0:
        return {}
    done = {}
    for config in configs:
        latest = ledgers[config.name].latest_materialization()
        if latest is not None and latest.run_id == context.run_id:
            done[config.name] = latest
    if done:
        context.log.info(
            f"Attempt {context.retry_number + 1}: {len(done)} export(s) were materialized by an "
            "earlier attempt of this run and are not exported again: "
            + ", ".join(f"{name} (export {m.export_id})" for name, m in done.items())
        )
    return done


def _permanent_failures_tag(context: AssetExecutionContext) -> str:
    """The run tag naming the exports this step failed permanently (read by its retries)."""
    return f"{PERMANENT_FAILURES_TAG_PREFIX}{context.op_handle}"


def _remember_permanent_failures(
    context: AssetExecutionContext, permanent: Mapping[str, bool]
) -> None:
    """Record, as a run tag, which exports failed for a reason a retry cannot mend, so the
    retry this step asks for (for the others) does not try them again. Dagster's retry event
    carries the error but not the failure's metadata, so the run's tags hold it."""
    names = sorted(n for n, p in permanent.items() if p)
    if names and not all(permanent.values()):
        context.instance.add_run_tags(
            context.run_id, {_permanent_failures_tag(context): json.dumps(names)}
        )


def _permanent_failures_before(
    context: AssetExecutionContext, configs: Sequence[ExportConfig]
) -> dict[str, str]:
    """On a step retry, the exports an earlier attempt of this run failed permanently: a retry
    cannot mend them, so they are not tried again."""
    if context.retry_number == 0:
        return {}
    run = context.instance.get_run_by_id(context.run_id)
    recorded = run.tags.get(_permanent_failures_tag(context)) if run is not None else None
    names = {c.name for c in configs} & set(json.loads(recorded) if recorded else [])
    if names:
        context.log.info(
            f"Attempt {context.retry_number + 1}: not retrying {', '.join(sorted(names))} "
            "(failed permanently in an earlier attempt of this run)"
        )
    return {
        name: "not tried again: an earlier attempt of this run failed in a way a retry cannot "
        "mend (see its failure)"
        for name in names
    }


def _is_permanent(exc: BaseException) -> bool:
    """Whether a retry cannot mend a failure: Domo's and configuration errors say so
    (``is_permanent``), and an S3 refusal of the landing says so (``LandingError.retryable``)."""
    if isinstance(exc, LandingError):
        return not exc.retryable
    return is_permanent(exc)


def _verdicts_document(outcome: ExportOutcome) -> list[dict[str, Any]]:
    """Every check's verdict on a refused export, as plain JSON."""
    return [
        {
            "check": v.check,
            "passed": v.passed,
            "description": v.description,
            "metadata": dict(v.metadata),
        }
        for v in verdicts(outcome)
    ]


def _refusal(outcome: ExportOutcome) -> str:
    """Why a verified-nothing export was not recorded: each failed check."""
    failed = [v for v in verdicts(outcome) if not v.passed]
    return f"Domo export {outcome.export.export_id} was not recorded: " + "; ".join(
        f"check {v.check} failed ({v.description})" for v in failed
    )


class StartLines:
    """The start lines of a step's exports, logged together (thread-safe).

    Exports start in worker threads within moments of each other; logging each line as it
    comes would store one event per export. The step's main thread logs what gathered each time
    it wakes (``flush``): one line as it is, several as one message.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = []

    def add(self, line: str) -> None:
        """Gather one start line (called from the export threads)."""
        with self._lock:
            self._lines.append(line)

    def flush(self, log: logging.Logger) -> None:
        """Log the lines gathered since the last flush, if any, as one event."""
        with self._lock:
            lines, self._lines = self._lines, []
        if len(lines) == 1:
            log.info(lines[0])
        elif lines:
            # Start lines and publication summaries gather here alike: a neutral heading.
            log.info(f"{len(lines)} lines from this step's Domo exports:\n" + "\n".join(lines))


def _completed(
    pending: set[Future[Any]], start_lines: StartLines, log: logging.Logger
) -> Iterator[Future[Any]]:
    """The futures as they complete, like ``as_completed``, logging gathered lines whenever one
    completes and at least every ``START_LINES_INTERVAL`` seconds. Futures the caller adds to
    ``pending`` meanwhile are waited for too."""
    while pending:
        done, _ = wait(pending, timeout=START_LINES_INTERVAL, return_when=FIRST_COMPLETED)
        start_lines.flush(log)
        for future in done:
            pending.discard(future)
            yield future


def _log_positions(
    context: AssetExecutionContext, futures: Mapping[Future[Any], ExportConfig]
) -> None:
    for future, config in futures.items():
        if future.cancelled():
            context.log.warning(f"{config.name}: not started (the run was terminated)")
        elif future.exception() is not None:
            context.log.warning(f"{config.name}: {future.exception()}")


def _result(outcome: ExportOutcome, key: AssetKey, instance_url: str) -> MaterializeResult:
    return MaterializeResult(
        asset_key=key,
        metadata=materialization_metadata(outcome, instance_url),
        data_version=DataVersion(outcome.export.export_id),
        check_results=check_results(outcome, key),
    )
