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

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from domo_assets.catalog import ExportConfig
from domo_assets.checks import check_results
from domo_assets.domo.errors import is_permanent
from domo_assets.ledger import InstanceLedger
from domo_assets.metadata import materialization_metadata
from domo_assets.outcome import ExportOutcome
from domo_assets.resource import AwsCredentialsResource, DomoResource
from domo_assets.runner import ExportRunner
from domo_assets.sightings import InstanceSightings
from domo_assets.translator import dataset_node, export_config
from domo_assets.verdicts import refused_for_good, verdicts, verified

# Start lines of a step's exports wait at most this long to be logged together: Dagster stores
# each log line as an event, one by one, so 100 starts would otherwise be 100 events.
START_LINES_INTERVAL = 1.0


def export_selected(
    context: AssetExecutionContext,
    domo: DomoResource,
    *,
    s3_client: Any | None = None,
    aws_credentials: AwsCredentialsResource | None = None,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Export every asset the step selected, as ``DomoResource.export_and_poll`` documents."""
    specs = [spec for spec in context.assets_def.specs if spec.key in context.selected_asset_keys]
    exports = {spec.key: export_config(spec) for spec in specs}
    # An export spec of each DataSet: its dependency is the DataSet's node, where sightings go.
    dataset_specs = {exports[spec.key].dataset_id: spec for spec in specs}
    if s3_client is None:
        from dagster_aws.s3 import S3Resource

        s3_client = S3Resource().get_client()
    start_lines = StartLines()
    runner = ExportRunner(
        client=domo.get_client(log=context.log),
        s3_client=s3_client,
        credentials=(aws_credentials or AwsCredentialsResource()).get_provider(),
        schedule=domo.poll_schedule,
        log=context.log,
        announce=start_lines.add,
        stale_after=domo.stale_export_after,
        sightings=InstanceSightings(
            context.instance, lambda dataset_id: dataset_node(dataset_specs[dataset_id])
        ),
    )
    # A backfill's run names its partition as a one-key range: has_partition_key is False there.
    partitioned = context.assets_def.partitions_def is not None
    partition_key = context.partition_key if partitioned else None
    yield from run_exports(context, runner, exports, domo, start_lines, partition_key)


def run_exports(
    context: AssetExecutionContext,
    runner: ExportRunner,
    exports: Mapping[AssetKey, ExportConfig],
    domo: DomoResource,
    start_lines: StartLines,
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
        exports: The exports to drive, by asset key.
        domo: The Domo resource (its cap on concurrent exports).
        start_lines: Where the runner's start lines gather (the runner's ``announce``);
            logged together at most every ``START_LINES_INTERVAL`` seconds.
        partition_key: The partition to export, for a partitioned asset.
    """
    keys = {config.name: key for key, config in exports.items()}
    configs = list(exports.values())
    ledgers = {
        c.name: InstanceLedger(context.instance, keys[c.name], partition_key, context.run_id)
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
                key = keys[config.name]
                if verified(outcome):
                    # The client's URL: a component's bound resource still holds EnvVar settings.
                    yield _result(outcome, key, runner.client.instance_url)
                    published = outcome.publication
                    if published is not None and published.table_error_permanent:
                        # Recorded (the data is verified), then the step fails saying what to grant.
                        failures[config.name] = published.table_error or ""
                        permanent[config.name] = True
                    continue
                yield from check_results(outcome, key)
                failures[config.name] = _refusal(outcome)
                permanent[config.name] = refused_for_good(outcome)
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
    ledgers: Mapping[str, InstanceLedger],
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


def _result(outcome: ExportOutcome, key: AssetKey, instance_url: str) -> MaterializeResult:
    return MaterializeResult(
        asset_key=key,
        metadata=materialization_metadata(outcome, instance_url),
        data_version=DataVersion(outcome.export.export_id),
        check_results=check_results(outcome, key),
    )
