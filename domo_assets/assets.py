"""The asset factory: one export asset per catalog entry, downstream of its Domo DataSet.

All export assets live in one subsettable ``multi_asset`` whose step drives the selected exports
concurrently in threads (they spend their time waiting on Domo), capped by
``DomoResource.max_concurrent_exports``; the step itself is in the ``domo`` pool, which caps
export steps across runs. So a run of 100 exports is one process, not 100, and each export
still gets its own materialization and checks. This module knows Dagster, not HTTP.
"""

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    DataVersion,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    ResourceParam,
    RetryPolicy,
    multi_asset,
)

from domo_assets.catalog import DATASET_KEY_PREFIX, DEFAULT_TIMEZONE, Catalog, ExportConfig
from domo_assets.checks import check_results, check_specs
from domo_assets.domo.errors import is_permanent
from domo_assets.metadata import export_prefix_uri, materialization_metadata
from domo_assets.outcome import ExportOutcome
from domo_assets.resource import AwsCredentialsResource, DomoResource, S3ClientFactory
from domo_assets.verdicts import HEADER_CHECK, verdicts, verified

if TYPE_CHECKING:
    from domo_assets.ledger import InstanceLedger
    from domo_assets.runner import ExportRunner

DATASET_KEY_SUFFIX = "_dataset"
DOMO_POOL = "domo"
EXPORTS_OP_NAME = "domo_exports"
KIND_DOMO = "domo"
KIND_S3 = "s3"
DEFAULT_RETRY_POLICY = RetryPolicy(max_retries=2, delay=10)
# Start lines of a step's exports wait at most this long to be logged together: Dagster stores
# each log line as an event, one by one, so 100 starts would otherwise be 100 events.
START_LINES_INTERVAL = 1.0


def dataset_asset_key(config: ExportConfig) -> AssetKey:
    """The key of the asset standing for an export's Domo DataSet: ``domo/<name>_dataset``.

    The UI labels graph nodes with the key's last part, so the suffix keeps a DataSet's node
    apart from an export named like it.
    """
    return AssetKey([DATASET_KEY_PREFIX, f"{config.dataset_key}{DATASET_KEY_SUFFIX}"])


def export_asset_key(config: ExportConfig) -> AssetKey:
    """The key of an export asset: its catalog name."""
    return AssetKey([config.name])


def build_dataset_specs(catalog: Catalog) -> list[AssetSpec]:
    """One external asset per distinct Domo DataSet, shared by all exports of it."""
    specs: dict[AssetKey, AssetSpec] = {}
    for config in catalog.exports:
        key = dataset_asset_key(config)
        if key in specs:
            continue
        label = config.dataset_name or config.dataset_id
        specs[key] = AssetSpec(
            key=key,
            description=f"Domo DataSet {label} (id {config.dataset_id}), the source of its S3 exports.",
            group_name=config.group,
            kinds={KIND_DOMO},
            metadata={"domo/dataset_id": config.dataset_id},
        )
    return list(specs.values())


def build_export_spec(
    config: ExportConfig, partitions_def: PartitionsDefinition | None = None
) -> AssetSpec:
    """The spec of one export asset."""
    destination = export_prefix_uri(config.bucket, config.path)
    metadata: dict[str, object] = {
        "domo/dataset_id": config.dataset_id,
        "dagster/uri": destination,
        "s3/region": config.region,
        # A JSON string would show in the UI as "all", quotes included.
        "columns": (
            MetadataValue.json(list(config.columns))
            if config.columns
            else MetadataValue.text("all")
        ),
    }
    if config.schedule:
        # Schedules run Dagster's implicit asset job, so the asset page names its cron here.
        metadata["domo/schedule"] = f"{config.schedule} ({config.timezone or DEFAULT_TIMEZONE})"
    return AssetSpec(
        partitions_def=partitions_def,
        key=export_asset_key(config),
        deps=[dataset_asset_key(config)],
        description=config.description or _default_description(config, destination),
        group_name=config.group,
        owners=config.owners,
        tags=config.tags,
        kinds={KIND_DOMO, KIND_S3},
        metadata=metadata,
        freshness_policy=(
            FreshnessPolicy.time_window(fail_window=config.max_age) if config.max_age else None
        ),
    )


def build_export_assets(
    catalog: Catalog,
    *,
    name: str = EXPORTS_OP_NAME,
    pool: str = DOMO_POOL,
    retry_policy: RetryPolicy | None = DEFAULT_RETRY_POLICY,
) -> AssetsDefinition:
    """The multi-asset that materializes every unpartitioned export of the catalog.

    Args:
        catalog: The validated catalog.
        name: The op's name.
        pool: The Dagster pool capping concurrent export steps across runs.
        retry_policy: Step retries; safe because a retry resumes the export it started.
    """
    configs = [c for c in catalog.exports if c.partition is None]
    return _export_multi_asset(
        configs,
        name=name,
        pool=pool,
        retry_policy=retry_policy,
        description="Exports Domo DataSets to S3, one asset per catalog entry.",
    )


def build_partitioned_export_assets(
    catalog: Catalog,
    *,
    pool: str = DOMO_POOL,
    retry_policy: RetryPolicy | None = DEFAULT_RETRY_POLICY,
) -> list[AssetsDefinition]:
    """One partitioned asset (op ``<name>_export``) per partitioned export of the catalog.

    Each run exports one partition (backfills launch a run per partition); the ``domo`` pool
    caps how many run at once, and partitions of one DataSet follow each other because Domo
    runs one export per DataSet at a time (a run waits for the running one).
    """
    return [
        _export_multi_asset(
            [config],
            name=f"{config.name}_export",
            pool=pool,
            retry_policy=retry_policy,
            partitions_def=config.partition.definition(),
            description=f"Exports Domo DataSet {config.dataset_name or config.dataset_id} to S3, "
            f"one {config.partition.scheme.value} partition per run.",
        )
        for config in catalog.exports
        if config.partition is not None
    ]


def _export_multi_asset(
    configs: Sequence[ExportConfig],
    *,
    name: str,
    pool: str,
    retry_policy: RetryPolicy | None,
    description: str,
    partitions_def: PartitionsDefinition | None = None,
) -> AssetsDefinition:
    by_key = {export_asset_key(c): c for c in configs}

    @multi_asset(
        name=name,
        specs=[build_export_spec(c, partitions_def) for c in configs],
        check_specs=[
            spec for key, c in by_key.items() for spec in check_specs(c, key, partitions_def)
        ],
        can_subset=True,
        pool=pool,
        retry_policy=retry_policy,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.multi_run(1) if partitions_def else None,
        description=description,
    )
    def _exports(
        context: AssetExecutionContext,
        domo: DomoResource,
        s3: ResourceParam[S3ClientFactory],
        aws_credentials: AwsCredentialsResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        # Imported at run time: the runner pulls in requests, which loading does not need.
        from domo_assets.runner import ExportRunner

        selected = [c for key, c in by_key.items() if key in context.selected_asset_keys]
        start_lines = StartLines()
        runner = ExportRunner(
            client=domo.get_client(log=context.log),
            s3_client=s3.get_client(),
            credentials=aws_credentials.get_provider(),
            schedule=domo.poll_schedule,
            log=context.log,
            announce=start_lines.add,
            stale_after=domo.stale_export_after,
        )
        partition_key = context.partition_key if partitions_def else None
        yield from run_exports(context, runner, selected, domo, start_lines, partition_key)

    return _exports


def run_exports(
    context: AssetExecutionContext,
    runner: "ExportRunner",
    configs: Sequence[ExportConfig],
    domo: DomoResource,
    start_lines: "StartLines",
    partition_key: str | None = None,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Drive exports concurrently, yielding each one's result as soon as it is known.

    An export is materialized only when every check passed; otherwise its check results are
    recorded without a materialization. A failed export does not hide the others: every verified
    one is materialized, then the step fails naming each failure. On a step retry, exports an
    earlier attempt of this run materialized are not exported again; a failure that a retry
    cannot mend (access, configuration, another request's export, a spent wait) does not ask
    for one.

    Args:
        context: The step's context.
        runner: Drives one export.
        configs: The exports to drive.
        domo: The Domo resource (its cap on concurrent exports, its instance URL).
        start_lines: Where the runner's start lines gather (the runner's ``announce``);
            logged together at most every ``START_LINES_INTERVAL`` seconds.
        partition_key: The partition to export, for a partitioned asset.
    """
    from domo_assets.ledger import InstanceLedger

    ledgers = {
        c.name: InstanceLedger(context.instance, export_asset_key(c), partition_key, context.run_id)
        for c in configs
    }
    pending = _not_yet_materialized(context, configs, ledgers)
    failures: dict[str, str] = {}
    permanent: dict[str, bool] = {}
    workers = max(1, min(len(pending), domo.max_concurrent_exports))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="domo-export") as executor:
        futures: dict[Future[ExportOutcome], ExportConfig] = {
            executor.submit(
                runner.run, config, partition_key=partition_key, ledger=ledgers[config.name]
            ): config
            for config in pending
        }
        try:
            for future in _completed(futures, start_lines, context.log):
                config = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:
                    failures[config.name] = str(exc)
                    permanent[config.name] = is_permanent(exc)
                    context.log.error(f"{config.name}: {exc}")
                    continue
                key = export_asset_key(config)
                if verified(outcome):
                    yield _result(outcome, domo.instance_url)
                    continue
                yield from check_results(outcome, key)
                failures[config.name] = _refusal(outcome)
                permanent[config.name] = _refusal_is_permanent(outcome)
                context.log.error(f"{config.name}: {failures[config.name]}")
        except BaseException:
            # Run termination: stop polling at once and say where each export stands.
            runner.stop.set()
            executor.shutdown(wait=True, cancel_futures=True)
            start_lines.flush(context.log)
            _log_positions(context, futures)
            raise
    if failures:
        raise Failure(
            description=f"{len(failures)} of {len(configs)} Domo export(s) failed: "
            + "; ".join(f"{name}: {reason}" for name, reason in failures.items()),
            metadata={
                "failed_exports": MetadataValue.json(failures),
                "permanent_failures": MetadataValue.json(
                    sorted(n for n, p in permanent.items() if p)
                ),
            },
            # A retry redoes only what failed; it is worth it unless nothing failed for a
            # reason a retry could mend.
            allow_retries=not all(permanent.values()),
        )


def _not_yet_materialized(
    context: AssetExecutionContext,
    configs: Sequence[ExportConfig],
    ledgers: Mapping[str, "InstanceLedger"],
) -> list[ExportConfig]:
    """The exports to drive: on a step retry, those an earlier attempt did not materialize.

    Dagster keeps an earlier attempt's materializations as the run's outputs, so downstream
    steps of the run still see them.
    """
    if context.retry_number == 0:
        return list(configs)
    done = {}
    for config in configs:
        latest = ledgers[config.name].latest_materialization()
        if latest is not None and latest.run_id == context.run_id:
            done[config.name] = latest.export_id
    if done:
        context.log.info(
            f"Attempt {context.retry_number + 1}: {len(done)} export(s) were materialized by an "
            "earlier attempt of this run and are not exported again: "
            + ", ".join(f"{name} (export {export_id})" for name, export_id in done.items())
        )
    return [c for c in configs if c.name not in done]


def _refusal(outcome: ExportOutcome) -> str:
    """Why a verified-nothing export was not recorded."""
    failed = [v for v in verdicts(outcome) if not v.passed]
    return f"Domo export {outcome.export.export_id} was not recorded: " + "; ".join(
        f"check {v.check} failed ({v.description})" for v in failed
    )


def _refusal_is_permanent(outcome: ExportOutcome) -> bool:
    """Whether a retry cannot mend the failed checks: a wrong header does not heal, while a
    row count or an object may (data changing under the export, S3 catching up)."""
    failed = {v.check for v in verdicts(outcome) if not v.passed}
    return failed == {HEADER_CHECK}


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
            log.info(f"{len(lines)} Domo exports started or resumed:\n" + "\n".join(lines))


def _completed(
    futures: Iterable[Future[ExportOutcome]], start_lines: StartLines, log: logging.Logger
) -> Iterator[Future[ExportOutcome]]:
    """The futures as they complete, like ``as_completed``, logging gathered start lines
    whenever one completes and at least every ``START_LINES_INTERVAL`` seconds."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=START_LINES_INTERVAL, return_when=FIRST_COMPLETED)
        start_lines.flush(log)
        yield from done


def _log_positions(
    context: AssetExecutionContext, futures: dict[Future[ExportOutcome], ExportConfig]
) -> None:
    for future, config in futures.items():
        if future.cancelled():
            context.log.warning(f"{config.name}: not started (the run was terminated)")
        elif future.exception() is not None:
            context.log.warning(f"{config.name}: {future.exception()}")


def _result(outcome: ExportOutcome, instance_url: str) -> MaterializeResult:
    key = export_asset_key(outcome.config)
    return MaterializeResult(
        asset_key=key,
        metadata=materialization_metadata(outcome, instance_url),
        data_version=DataVersion(outcome.export.export_id),
        check_results=check_results(outcome, key),
    )


def _default_description(config: ExportConfig, destination: str) -> str:
    source = config.dataset_name or config.dataset_id
    columns = ", ".join(config.columns) if config.columns else "all columns"
    text = f"CSV export of Domo DataSet {source} to {destination} ({columns})"
    if config.where:
        text += ", filtered"
    if config.group_by:
        text += f", grouped by {', '.join(config.group_by)}"
    return text + "."
