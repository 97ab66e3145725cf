"""A plain HTTP client for the Domo endpoints this package uses.

It knows HTTP and Domo, nothing of Dagster. Every response is parsed into the records of
``domo_assets.domo.models`` at this edge and every failure becomes one of the exceptions of
``domo_assets.domo.errors``.

Each call goes to the API Domo documents it on, with that API's credential only
(``endpoints``): the export, its status, the row count and the current user to the instance API
with the developer token; the DataSet's metadata and schema to the platform API with the OAuth
bearer token when OAuth is configured (otherwise to the instance API too).

Retries: GETs retry connection errors, 429 (honouring ``Retry-After``) and 5xx with capped
exponential backoff and jitter, through urllib3's ``Retry``. The export POST is never retried
blindly: after an ambiguous failure (timeout, reset, 5xx) the client lists the DataSet's exports
and adopts the one Domo accepted before trying again, so one call never starts two exports.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from domo_assets.domo.auth import DomoAuth, OAuthClientCredentialsAuth
from domo_assets.domo.defaults import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POOL_SIZE,
    DEFAULT_POST_ATTEMPTS,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRY_AFTER_MAX,
)
from domo_assets.domo.endpoints import (
    DATASET_LIST,
    DATASOURCE,
    EXPORTS,
    LISTING_PAGE_MAX,
    ME,
    OAUTH_CANNOT_EXPORT,
    OAUTH_CANNOT_EXPORT_HINT,
    PLATFORM_DATASET,
    PLATFORM_USER,
    QUERY,
    SCHEMA,
    SEARCH,
    SEARCH_RESULTS_MAX,
    USER,
    Api,
    Endpoint,
    check_url,
)
from domo_assets.domo.errors import (
    DomoAuthenticationError,
    DomoError,
    DomoErrorDetail,
    DomoExportFailedError,
    DomoExportInProgressError,
    DomoExportStoppedError,
    DomoExportTimeoutError,
    DomoInvalidRequestError,
    DomoNotFoundError,
    DomoRateLimitError,
    DomoResponseError,
    DomoServerError,
    DomoTimeoutError,
    error_for_status,
)
from domo_assets.domo.models import (
    DataSetColumn,
    DataSetMetadata,
    DataSetSummary,
    DomoUser,
    Export,
    ExportRequest,
    ExportStart,
    ExportStatus,
    QueryResult,
    RowFilter,
    SkippedEntry,
    StartOutcome,
    export_entries,
    find_export_entry,
    parse_columns,
    parse_dataset_page,
    parse_export_entries,
    parse_search_page,
    skipped_entry,
)
from domo_assets.domo.polling import PollSchedule
from domo_assets.domo.redaction import redact
from domo_assets.domo.replies import TOE_IN_MESSAGE, error_detail, json_or_none
from domo_assets.version import __version__

RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = f"domo_assets/{__version__} (+dagster) python-requests/{requests.__version__}"

UNKNOWN_STATUS_HINT = (
    "Domo reported a status it does not document: the export did not succeed. Check it in Domo "
    "(quote the export id to Domo support), then materialize again"
)
PREVIOUS_FAILED_HINT = (
    "Domo hands back its previous export while the DataSet's data is unchanged, and that one "
    "did not succeed: update the DataSet in Domo so that a new export starts, then materialize "
    "again (quote the toe to Domo support if it persists)"
)

logger = logging.getLogger(__name__)


PollCallback = Callable[[Export, float], None]


class _LoggingRetry(Retry):
    """urllib3 ``Retry`` that logs each retry, so retries are visible and bounded."""

    log: logging.Logger = logger

    def new(self, **kw: Any) -> _LoggingRetry:
        retry = super().new(**kw)
        retry.log = self.log
        return retry

    def increment(
        self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None
    ):  # type: ignore[override]
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        cause = f"HTTP {response.status}" if response is not None else type(error).__name__
        attempt = len(new.history)
        path = (url or "").split("?")[0]
        self.log.warning(
            f"Domo {method} {path} failed ({cause}); retry {attempt} of {self.total_budget}"
        )
        return new

    @property
    def total_budget(self) -> int:
        return len(self.history) + (self.total if isinstance(self.total, int) else 0)


class DomoClient:
    """Talks to one Domo instance: its instance API, and the platform API when OAuth is set.

    Args:
        instance_url: The instance's base URL, such as ``https://acme.domo.com``.
        auth: The instance API's credential: a developer token (Domo documents no other for
            the export endpoint).
        platform_auth: OAuth client credentials for the platform API (``api_url`` is theirs),
            which then serves the DataSet metadata and schema reads; None: the instance API
            serves them too.
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for a response.
        max_retries: Retries of a GET (and of a connection that never reached Domo).
        backoff_factor: Base of the exponential backoff between retries, in seconds.
        backoff_max: Longest wait between retries, in seconds.
        post_attempts: Tries of the export POST after ambiguous failures.
        log: Where retries and recoveries are logged.
        sleep: The sleep function (tests of backoff may pass their own).
        clock: The monotonic clock polling measures elapsed time with (simulations pass theirs).
        pool_size: Connections kept open per session; at least the number of threads that use
            the client at once, or connections are opened and dropped for each request.

    Raises:
        DomoAuthenticationError: ``auth`` is not an instance-API credential (OAuth alone cannot
            export), or ``platform_auth`` not a platform-API one.
        InsecureUrlError: A URL is plain http:// to a host other than loopback.
    """

    def __init__(
        self,
        instance_url: str,
        auth: DomoAuth,
        *,
        platform_auth: OAuthClientCredentialsAuth | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        post_attempts: int = DEFAULT_POST_ATTEMPTS,
        log: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        pool_size: int = DEFAULT_POOL_SIZE,
    ):
        if auth.api is not Api.INSTANCE:
            raise DomoAuthenticationError(OAUTH_CANNOT_EXPORT, hint=OAUTH_CANNOT_EXPORT_HINT)
        if platform_auth is not None and platform_auth.api is not Api.PLATFORM:
            raise DomoAuthenticationError(
                f"{platform_auth!r} is not a credential of Domo's platform API",
                hint="Pass OAuth client credentials as platform_auth",
            )
        self.instance_url = check_url(instance_url, "instance_url (DOMO_INSTANCE_URL)")
        self.auth = auth
        self.platform_auth = platform_auth
        self.api_url = platform_auth.api_url if platform_auth is not None else None
        # Secrets this client handed to Domo in export requests: an export's error message,
        # read later while polling, may echo them.
        self._sent_secrets: set[str] = set()
        self.timeout = (connect_timeout, read_timeout)
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.post_attempts = post_attempts
        self.log = log or logger
        self._sleep = sleep
        self._clock = clock
        self._pool_size = pool_size
        # Reads (GETs and the read-only query POST) retry connection errors, 429 and 5xx. The
        # export POST's session retries only connections that never reached Domo.
        self._session = self._build_session(
            self._retry(
                max_retries, max_retries, frozenset({"GET", "POST"}), backoff_factor, backoff_max
            )
        )
        self._export_session = self._build_session(
            self._retry(max_retries, 0, frozenset({"GET"}), backoff_factor, backoff_max)
        )
        self._columns_cache: dict[str, tuple[DataSetColumn, ...]] = {}
        # (DataSet, entry identity) of unreadable history entries already warned about: such an
        # entry stays in Domo's history, and every poll would otherwise repeat the warning.
        self._warned_entries: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"DomoClient(instance_url={self.instance_url!r}, auth={self.auth!r}, "
            f"platform_auth={self.platform_auth!r})"
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret this client knows: both credentials' and those it sent to Domo."""
        platform = self.platform_auth.secrets if self.platform_auth is not None else ()
        with self._lock:
            sent = tuple(self._sent_secrets)
        return (*self.auth.secrets, *platform, *sent)

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this client (in any escaped form) replaced by ``***``."""
        return redact(text, self.secrets)

    def _retry(
        self,
        connect: int,
        other: int,
        methods: frozenset[str],
        backoff_factor: float,
        backoff_max: float,
    ) -> _LoggingRetry:
        retry = _LoggingRetry(
            total=connect,
            connect=connect,
            read=other,
            status=other,
            other=0,
            allowed_methods=methods,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            respect_retry_after_header=True,
            retry_after_max=DEFAULT_RETRY_AFTER_MAX,
            raise_on_status=False,
            redirect=0,
            raise_on_redirect=False,
        )
        retry.log = self.log
        return retry

    def _build_session(self, retry: Retry) -> requests.Session:
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=self._pool_size)
        session = requests.Session()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        return session

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()
        self._export_session.close()

    # -- DataSets -----------------------------------------------------------------------------

    def get_dataset(self, dataset_id: str) -> DataSetMetadata:
        """Read a DataSet's metadata (row count, columns, last updated).

        From the platform API when OAuth is configured (its answer carries the schema too,
        which is cached), otherwise from the instance API.

        Raises:
            DomoAuthenticationError: 401.
            DomoPermissionError: 403, the token may not read the DataSet.
            DomoNotFoundError: 404, no such DataSet.
        """
        endpoint = PLATFORM_DATASET if self.platform_auth is not None else DATASOURCE
        payload = self._request("GET", endpoint, dataset_id, what=f"DataSet {dataset_id}")
        metadata = DataSetMetadata.from_api(payload)
        if endpoint is PLATFORM_DATASET:
            self._cache_columns(dataset_id, parse_columns(payload))
        return metadata if metadata.dataset_id else replace(metadata, dataset_id=dataset_id)

    def get_columns(self, dataset_id: str) -> tuple[DataSetColumn, ...]:
        """Read a DataSet's schema (cached per client: schemas change rarely).

        From the platform API when OAuth is configured, otherwise from the instance API.
        """
        with self._lock:
            cached = self._columns_cache.get(dataset_id)
        if cached is not None:
            return cached
        endpoint = PLATFORM_DATASET if self.platform_auth is not None else SCHEMA
        payload = self._request("GET", endpoint, dataset_id, what=f"schema of DataSet {dataset_id}")
        return self._cache_columns(dataset_id, parse_columns(payload))

    def _cache_columns(
        self, dataset_id: str, columns: tuple[DataSetColumn, ...]
    ) -> tuple[DataSetColumn, ...]:
        with self._lock:
            self._columns_cache[dataset_id] = columns
        return columns

    def count_rows(self, dataset_id: str, where: RowFilter | None = None) -> int:
        """Count the rows the token's user can see, through Domo's query endpoint.

        PDP policies apply to queries as to exports, so this is the count an export of the same
        filter by the same token should have. It is always asked of the instance API with the
        developer token, the export's own credential: the OAuth client's user may see other rows.
        """
        sql = "SELECT COUNT(*) FROM table"
        if where:
            sql += f" WHERE {where.to_sql()}"
        result = self.query(dataset_id, sql)
        try:
            return int(float(result.scalar()))
        except (TypeError, ValueError):
            raise DomoResponseError(
                f"Domo's COUNT(*) over DataSet {dataset_id} returned {result.scalar()!r}"
            ) from None

    def query(self, dataset_id: str, sql: str) -> QueryResult:
        """Run a SQL query over a DataSet (the table is always called ``table``), as the
        developer token's user (instance API)."""
        body = self._request(
            "POST", QUERY, dataset_id, json={"sql": sql}, what=f"query of DataSet {dataset_id}"
        )
        return QueryResult.from_api(body)

    def get_me(self) -> DomoUser | None:
        """The user the credentials act as, or None where the instance does not say."""
        try:
            return DomoUser.from_api(self._request("GET", ME, what="current user"))
        except (DomoNotFoundError, DomoResponseError):
            return None

    def list_datasets(self) -> tuple[DataSetSummary, ...]:
        """Every DataSet Domo lists for these credentials, in Domo's order.

        With OAuth configured, the platform API's ``GET /v1/datasets`` in pages of at most 50
        (``limit`` + ``offset``, until a short page); otherwise the instance search API with
        the developer token (``POST /api/search/v1/query``, pages of 50, which reaches at most
        10,000 DataSets: more fails rather than returning part of the listing).

        Raises:
            DomoError: A page was refused or could not be read; DomoResponseError also when
                the search API holds more DataSets than it can page through.
        """
        if self.platform_auth is not None:
            return self._list_platform()
        return self._list_search()

    def _list_platform(self) -> tuple[DataSetSummary, ...]:
        found: list[DataSetSummary] = []
        while True:
            page = parse_dataset_page(
                self._request(
                    "GET",
                    DATASET_LIST,
                    params={"limit": LISTING_PAGE_MAX, "offset": len(found)},
                    what=f"DataSet listing (offset {len(found)})",
                )
            )
            found.extend(DataSetSummary.from_platform(item) for item in page)
            if len(page) < LISTING_PAGE_MAX:
                return tuple(found)

    def _list_search(self) -> tuple[DataSetSummary, ...]:
        found: list[DataSetSummary] = []
        while True:
            body = {
                "query": "*",
                "entityList": [["dataset"]],
                "count": LISTING_PAGE_MAX,
                "offset": len(found),
            }
            hits, total = parse_search_page(
                self._request(
                    "POST", SEARCH, json=body, what=f"DataSet search (offset {len(found)})"
                )
            )
            found.extend(DataSetSummary.from_search_hit(hit) for hit in hits)
            if len(hits) < LISTING_PAGE_MAX or (total is not None and len(found) >= total):
                break
            if len(found) >= SEARCH_RESULTS_MAX:
                raise DomoResponseError(
                    f"Domo's search API lists more than {SEARCH_RESULTS_MAX:,} DataSets, the "
                    "most it pages through: give the connection OAuth client credentials "
                    "(client_id, client_secret) so that the platform API's listing is read"
                )
        return tuple(found)

    def get_user(self, user_id: str) -> DomoUser:
        """Read a user (for a DataSet owner's e-mail address).

        From the platform API when OAuth is configured, otherwise from the instance API.

        Raises:
            DomoNotFoundError: No such user (or not visible to these credentials).
        """
        endpoint = PLATFORM_USER if self.platform_auth is not None else USER
        payload = self._request(
            "GET", endpoint, path_fields={"user_id": user_id}, what=f"user {user_id}"
        )
        return DomoUser.from_api(payload)

    # -- Exports ------------------------------------------------------------------------------

    def list_exports(self, dataset_id: str) -> tuple[Export, ...]:
        """Every export of a DataSet, history included, oldest first where Domo dates them.

        An entry that cannot be read is left out, with a warning (once per entry per client).
        """
        return self.exports_from_payload(dataset_id, self._read_exports(dataset_id))

    def get_export(self, dataset_id: str, export_id: str) -> Export:
        """Find one export of a DataSet by id, parsing only that entry of the list.

        Raises:
            DomoNotFoundError: The DataSet lists no export with that id.
            DomoResponseError: Its entry cannot be read.
        """
        return self.export_from_payload(dataset_id, export_id, self._read_exports(dataset_id))

    def exports_from_payload(self, dataset_id: str, payload: Any) -> tuple[Export, ...]:
        """The readable exports of a decoded export list, oldest first (``list_exports``).

        Args:
            dataset_id: The DataSet the list belongs to (for warnings).
            payload: The decoded body of ``GET /api/query/v1/export/{id}``.
        """
        history = parse_export_entries(export_entries(payload))
        for skipped in history.skipped:
            self._warn_skipped(dataset_id, skipped)
        return tuple(sorted(history.exports, key=_start_key))

    def export_from_payload(self, dataset_id: str, export_id: str, payload: Any) -> Export:
        """One export of a decoded export list (``get_export``): found in one pass, then parsed.

        Raises:
            DomoNotFoundError: The list has no export with that id.
            DomoResponseError: Its entry cannot be read.
        """
        found = find_export_entry(export_entries(payload), export_id)
        if found is None:
            raise DomoNotFoundError(
                f"DataSet {dataset_id} lists no export {export_id}",
                hint="The export may have expired from Domo's history; start a new one",
            )
        position, entry = found
        try:
            return Export.from_api(entry)
        except DomoResponseError as exc:
            skipped = skipped_entry(position, entry, exc.summary)
            raise DomoResponseError(
                self.scrub(
                    f"Domo's export {export_id} of DataSet {dataset_id} cannot be read "
                    f"({skipped.describe()} of its export list): {skipped.reason}"
                ),
                hint="Check the export in Domo and report the entry to Domo support; "
                "materialize again to start a new export",
            ) from None

    def active_export(self, dataset_id: str) -> Export | None:
        """The DataSet's export in progress, if any (Domo allows one at a time)."""
        return latest_active(self.list_exports(dataset_id))

    def start_export(
        self, dataset_id: str, request: ExportRequest, listed: Iterable[Export] | None = None
    ) -> ExportStart:
        """Ask Domo to export a DataSet to S3, never starting two exports in one call.

        The DataSet's exports are listed first (unless the caller has just listed them). After
        an ambiguous failure of the POST (timeout, connection reset, 5xx), the list is read
        again: an export that was not there before is the one Domo accepted, and is adopted
        instead of posting again.

        Args:
            dataset_id: The DataSet to export.
            request: Destination, credentials and query.
            listed: The DataSet's exports as the caller has just listed them (saves a request).

        Returns:
            The export and how it came about.

        Raises:
            DomoExportInProgressError: Domo refused because another export is running.
            DomoExportFailedError: Domo answered with an export that did not succeed (``error``
                or an unknown status), new or previous.
            DomoError: Any other failure, after bounded retries.
        """
        columns = request.query.columns or tuple(c.name for c in self.get_columns(dataset_id))
        body = request.to_api(columns)
        if listed is None:
            listed = self.list_exports(dataset_id)
        known = {e.export_id: e for e in listed}
        path = EXPORTS.path(dataset_id)
        with self._lock:
            # Every message and error of this client is redacted of them from here on.
            self._sent_secrets.update(s for s in request.credentials.secrets if s)
        last_error: DomoError | None = None
        for attempt in range(1, self.post_attempts + 1):
            try:
                payload = self._request(
                    "POST",
                    EXPORTS,
                    dataset_id,
                    json=body,
                    what=f"export of DataSet {dataset_id}",
                    idempotent=False,
                )
            except DomoInvalidRequestError as exc:
                raise self._explain_rejection(dataset_id, exc) from exc
            except DomoRateLimitError as exc:
                last_error = exc
                self._sleep_before_post(attempt, exc, "Domo rate limited the export request")
                continue
            except (DomoTimeoutError, DomoServerError) as exc:
                last_error = exc
                recovered = self._find_new_export(dataset_id, known)
                if recovered is not None:
                    self._warn(
                        f"The response to the export request for DataSet {dataset_id} was lost "
                        f"({exc.summary}), but Domo had accepted it: continuing with export "
                        f"{recovered.export_id}"
                    )
                    start = ExportStart(recovered, StartOutcome.RECOVERED)
                    return self._unless_failed(dataset_id, start, path)
                self._sleep_before_post(
                    attempt, exc, "The export request failed before Domo accepted it"
                )
                continue
            export = Export.from_api(payload)
            start = ExportStart(export, _outcome(export, known))
            return self._unless_failed(dataset_id, start, path)
        assert last_error is not None
        raise type(last_error)(
            f"Could not start an export of DataSet {dataset_id} after {self.post_attempts} attempts "
            f"(no export was created)",
            last_error.detail,
        )

    def wait_for_export(
        self,
        dataset_id: str,
        export_id: str,
        schedule: PollSchedule | None = None,
        *,
        stop: threading.Event | None = None,
        on_poll: PollCallback | None = None,
        expected_seconds: float | None = None,
        current: Export | None = None,
    ) -> Export:
        """Poll an export until it ends.

        Args:
            dataset_id: The export's DataSet.
            export_id: The export to follow.
            schedule: When to read the status, and the timeout.
            stop: Set it to stop polling early (run termination).
            on_poll: Called with the export and the seconds elapsed after each status read.
            expected_seconds: How long the export is expected to take (see
                ``polling.expected_duration``): reads concentrate around then.
            current: The export as the caller has just read it (e.g. the start request's
                answer): the first read then waits for the schedule instead of being immediate.

        Returns:
            The export with status ``success``.

        Raises:
            DomoExportFailedError: The export ended in ``error`` or in an unknown status.
            DomoExportTimeoutError: It did not finish within the schedule's timeout.
            DomoExportStoppedError: ``stop`` was set.
        """
        schedule = schedule or PollSchedule()
        stop = stop or threading.Event()
        started = self._clock()
        moments = iter(schedule.read_times(expected_seconds))
        export = current or self.get_export(dataset_id, export_id)
        while True:
            elapsed = self._clock() - started
            if export is not current and on_poll is not None:
                on_poll(export, elapsed)
            if export.status is ExportStatus.SUCCESS:
                return export
            if export.status.is_failure:
                raise self._failure(
                    export,
                    f"Domo export {export_id} of DataSet {dataset_id} ended",
                    DomoErrorDetail("GET", EXPORTS.path(dataset_id)),
                )
            remaining = schedule.timeout - elapsed
            if remaining <= 0:
                raise DomoExportTimeoutError(
                    f"Domo export {export_id} of DataSet {dataset_id} was still "
                    f"'{export.status.value}' after {elapsed:.0f} s (poll timeout {schedule.timeout:.0f} s)"
                )
            moment = next(m for m in moments if m > elapsed)
            if stop.wait(min(moment - elapsed, remaining)):
                raise DomoExportStoppedError(
                    f"Stopped polling Domo export {export_id} of DataSet {dataset_id} after "
                    f"{elapsed:.0f} s; its last status was '{export.status.value}'"
                )
            export = self.get_export(dataset_id, export_id)

    # -- internals ----------------------------------------------------------------------------

    def _read_exports(self, dataset_id: str) -> Any:
        return self._request("GET", EXPORTS, dataset_id, what=f"exports of DataSet {dataset_id}")

    def _warn_skipped(self, dataset_id: str, skipped: SkippedEntry) -> None:
        key = (dataset_id, skipped.identity)
        with self._lock:
            if key in self._warned_entries:
                return
            self._warned_entries.add(key)
        self._warn(
            f"Ignoring {skipped.describe()} of the export list of DataSet {dataset_id}: "
            f"{skipped.reason}. The other exports are still used; this entry stays in Domo's "
            "history and is reported once: report it to Domo support if it is one of your exports"
        )

    def _warn(self, text: str) -> None:
        """Log a warning, scrubbed of every secret (it may quote what Domo sent)."""
        self.log.warning(self.scrub(text))

    def _unless_failed(self, dataset_id: str, start: ExportStart, path: str) -> ExportStart:
        """The start, unless Domo answered with an export that did not succeed."""
        export = start.export
        if not export.status.is_failure:
            return start
        fresh = start.outcome in (StartOutcome.STARTED, StartOutcome.RECOVERED)
        which = "new export" if fresh else "its existing export"
        # Only a handed-back export needs the advice on how to make Domo start a new one.
        hint = PREVIOUS_FAILED_HINT if not fresh and export.status is ExportStatus.ERROR else None
        raise self._failure(
            export,
            f"Domo answered the export request for DataSet {dataset_id} with {which} "
            f"{export.export_id},",
            DomoErrorDetail("POST", path),
            hint=hint,
        )

    def _failure(
        self,
        export: Export,
        lead: str,
        request: DomoErrorDetail,
        *,
        hint: str | None = None,
    ) -> DomoExportFailedError:
        """The error for an export that did not succeed, with Domo's errorCode, message and toe."""
        message = redact(export.message, self.secrets) if export.message else None
        toe = TOE_IN_MESSAGE.search(message or "")
        if hint is None and export.status is ExportStatus.UNKNOWN:
            hint = UNKNOWN_STATUS_HINT
        return DomoExportFailedError(
            f"{lead} in status '{export.status_text}' (errorCode {export.error_code or 'none'}"
            f"{'' if message else '; Domo gave no message'})",
            replace(request, message=message, toe=toe["toe"] if toe else None),
            hint,
            export=replace(export, message=message),
        )

    def _explain_rejection(self, dataset_id: str, exc: DomoInvalidRequestError) -> DomoError:
        """Turn a 400 into DomoExportInProgressError when another export is running."""
        try:
            active = self.active_export(dataset_id)
        except DomoError:
            return exc
        if active is None:
            return exc
        return DomoExportInProgressError(
            f"Domo refused a new export of DataSet {dataset_id}: export {active.export_id} is "
            "still running",
            exc.detail,
            active_export_id=active.export_id,
            active_export=active,
        )

    def _find_new_export(self, dataset_id: str, known: dict[str, Export]) -> Export | None:
        try:
            exports = self.list_exports(dataset_id)
        except DomoError as exc:
            self._warn(f"Could not list the exports of DataSet {dataset_id}: {exc}")
            raise
        new = [e for e in exports if e.export_id not in known]
        if new:
            return new[-1]
        # Domo may have answered "nothing changed" with an existing export, or an export that was
        # already running: neither is new, and neither was started by this call.
        return None

    def _sleep_before_post(self, attempt: int, exc: DomoError, what: str) -> None:
        if attempt >= self.post_attempts:
            return
        retry_after = exc.detail.retry_after if exc.detail else None
        delay = retry_after or min(
            self.backoff_max, self.backoff_factor * 2**attempt
        ) + random.uniform(0, self.backoff_factor)
        self._warn(
            f"{what} ({exc.summary}); attempt {attempt} of {self.post_attempts}, retrying in {delay:.1f} s"
        )
        self._sleep(delay)

    def _request(
        self,
        method: str,
        endpoint: Endpoint,
        dataset_id: str = "",
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        path_fields: Mapping[str, str] | None = None,
        what: str,
        idempotent: bool = True,
        renewed: bool = False,
    ) -> Any:
        """One call, to the API its endpoint is documented on, with that API's credential."""
        base, auth = self._api(endpoint.api)
        path = endpoint.path(dataset_id, **(path_fields or {}))
        session = self._session if idempotent else self._export_session
        try:
            response = session.request(
                method,
                f"{base}{path}",
                json=json,
                params=params,
                auth=auth,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.RetryError as exc:
            raise DomoTimeoutError(
                f"Domo kept failing on {what} after every retry: {type(exc).__name__}",
                DomoErrorDetail(method, path),
            ) from None
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            kind = (
                "did not answer in time"
                if isinstance(exc, requests.exceptions.Timeout)
                else "connection failed"
            )
            raise DomoTimeoutError(
                f"Domo {kind} for {what} ({type(exc).__name__})", DomoErrorDetail(method, path)
            ) from None
        if response.status_code == 401 and not renewed and auth.refresh():
            # An OAuth token may expire between our check and Domo's: renew once and retry.
            return self._request(
                method,
                endpoint,
                dataset_id,
                json=json,
                params=params,
                path_fields=path_fields,
                what=what,
                idempotent=idempotent,
                renewed=True,
            )
        if 300 <= response.status_code < 400:
            setting = "DOMO_INSTANCE_URL" if endpoint.api is Api.INSTANCE else "DOMO_API_URL"
            raise DomoInvalidRequestError(
                self.scrub(f"Domo redirected {what} to {response.headers.get('Location', '?')!r}"),
                DomoErrorDetail(method, path, response.status_code),
                hint=f"Set {setting} to the https:// URL Domo answers on (the credential is not "
                "sent across redirects)",
            )
        if response.status_code >= 400:
            detail = error_detail(response, method, path, self.secrets)
            raise error_for_status(response.status_code)(f"Domo refused {what}", detail)
        return _decode(response, method, path)

    def _api(self, api: Api) -> tuple[str, DomoAuth]:
        """The base URL and the credential of one of Domo's APIs."""
        if api is Api.INSTANCE:
            return self.instance_url, self.auth
        if self.platform_auth is None or self.api_url is None:
            # Only reachable through a bug: a platform call is chosen only with OAuth set.
            raise DomoAuthenticationError(
                "A call to Domo's platform API needs OAuth client credentials",
                hint="Set DOMO_CLIENT_ID and DOMO_CLIENT_SECRET",
            )
        return self.api_url, self.platform_auth


def latest_active(exports: Iterable[Export]) -> Export | None:
    """The latest export still in progress among a DataSet's exports (oldest first), if any."""
    active = [e for e in exports if e.is_active]
    return active[-1] if active else None


def _outcome(export: Export, known: dict[str, Export]) -> StartOutcome:
    previous = known.get(export.export_id)
    if previous is None:
        return StartOutcome.STARTED
    if previous.is_active or export.is_active:
        return StartOutcome.ALREADY_RUNNING
    return StartOutcome.REUSED_PREVIOUS


def _start_key(export: Export) -> float:
    return export.started.timestamp() if export.started else 0.0


def _decode(response: requests.Response, method: str, path: str) -> Any:
    if not response.content:
        return None
    body = json_or_none(response)
    if body is None:
        raise DomoResponseError(
            f"Domo answered {method} {path} with HTTP {response.status_code} but a non-JSON body "
            f"({response.headers.get('Content-Type', 'no content type')})"
        )
    return body
