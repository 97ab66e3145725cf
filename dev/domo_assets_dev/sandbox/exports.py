"""The export engine: export requests, export records and the workers that write CSV to S3.

An export is written to ``<bucket>/<path>/<exportId>/export/`` as ``data.csv.gz`` (gzip
DataSets) or ``data.csv`` (compression none); more rows than the DataSet's `rows_per_file`
are split into ``data-00000.csv.gz``, ``data-00001.csv.gz``... (the `key_layout` behaviour
can nest each file in a sub-folder of ``export/`` or leave ``export/`` out). Each file holds an optional
UTF-8 BOM, a header row and the data rows, written by the `csv` module (QUOTE_MINIMAL,
``\\r\\n`` line ends; a null and an empty string both appear as an empty field).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from .behaviour import (
    BARE_LAYOUT,
    MULTIPART_UPLOAD,
    NESTED_LAYOUT,
    REJECT_POST,
    SAME_REQUEST,
    Behaviour,
)
from .datasets import Dataset, DatasetSpec, Row, iso_from_ms, now_ms
from .moto_state import bucket_default_kms_key, bucket_owner, kms_key_arn
from .policy import (
    KMS_DECRYPT,
    KMS_GENERATE_DATA_KEY,
    S3_PUT_OBJECT,
    S3_RESOURCE_ACCOUNT,
    UnsupportedPolicyError,
    object_arn,
)
from .query import Predicate, QueryError, RowQuery, build_query, column_names, order_items
from .s3 import ACCOUNT_ID, make_client
from .sts import TEMPORARY_KEY_PREFIX, IssuedCredentials, StsLedger, credential_kind
from .users import User
from .web import ApiError, new_toe

EXPORT_FORMAT = "csv"
STATUS_NONE = "none"
STATUS_EXPORTING = "exporting"
STATUS_SUCCESS = "success"
STATUS_ERROR = "error"
ACTIVE_STATUSES = frozenset({STATUS_NONE, STATUS_EXPORTING})
REQUIRED_FIELDS = ("awsAccessKey", "awsAccessSecret", "bucket", "region")
OPTIONAL_TEXT_FIELDS = ("sessionToken", "awsKmsKey", "path", "source")
CSV_LINE_TERMINATOR = "\r\n"
UTF8_BOM = "\ufeff"
GZIP_LEVEL = 6
FILE_EXTENSIONS = {"gzip": ".csv.gz", "none": ".csv"}
CONTENT_TYPES = {"gzip": "application/gzip", "none": "text/csv"}
EXPORT_FAILED = "EXPORT_FAILED"
EXPORT_REJECTED = "EXPORT_REJECTED"
REJECTED_MESSAGE = "Domo rejected the export request: retry it, or give Domo support this toe"
S3_WRITE_FAILED = "S3_WRITE_FAILED"
DENIED_WRITE_HINT = (
    "hand Domo credentials whose session policy allows this write, or export to a path it allows"
)
WORKER_JOIN_SECONDS = 10.0
URL_SAFE_CHARACTERS = "/-_.~"
EXPORT_FOLDER = "export"
RENAMED_SUFFIX = " (renamed)"


class ExportWriteError(Exception):
    """Writing an export's files failed; the message says why."""


@dataclass(frozen=True)
class ExportRequest:
    """A validated body of ``POST /api/query/v1/export/{datasetId}``.

    Attributes:
        access_key: ``awsAccessKey``.
        secret: ``awsAccessSecret`` (never shown).
        session_token: ``sessionToken`` (never shown), or None.
        kms_key: ``awsKmsKey``, or None.
        bucket: Target bucket.
        path: Key prefix, slashes trimmed (default: the DataSet id).
        region: ``region``.
        source: ``source``, or None.
        include_bom: ``queryRequest.includeBOM``.
        use_cache: ``queryRequest.useCache``.
        query_json: ``queryRequest.query`` as sent.
        query: The compiled query.
    """

    access_key: str
    secret: str = field(repr=False)
    session_token: str | None = field(repr=False)
    kms_key: str | None
    bucket: str
    path: str
    region: str
    source: str | None
    include_bom: bool
    use_cache: bool
    query_json: Mapping[str, Any]
    query: RowQuery

    @classmethod
    def parse(cls, body: Mapping[str, Any], spec: DatasetSpec) -> ExportRequest:
        """Validate a request body against the DataSet `spec`.

        Raises:
            ApiError: 400 naming the first problem found.
        """
        for name in REQUIRED_FIELDS:
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise ApiError(400, f"'{name}' is required")
        for name in OPTIONAL_TEXT_FIELDS:
            if body.get(name) is not None and not isinstance(body[name], str):
                raise ApiError(400, f"'{name}' must be a string")
        query_request = _object(body.get("queryRequest"), "queryRequest")
        query_json = _object(query_request.get("query"), "queryRequest.query")
        return cls(
            access_key=body["awsAccessKey"],
            secret=body["awsAccessSecret"],
            session_token=body.get("sessionToken") or None,
            kms_key=body.get("awsKmsKey") or None,
            bucket=body["bucket"],
            path=(body.get("path") or "").strip("/") or spec.id,
            region=body["region"],
            source=body.get("source"),
            include_bom=_flag(query_request, "includeBOM"),
            use_cache=_flag(query_request, "useCache"),
            query_json=query_json,
            query=_compile(query_json, spec),
        )

    def reuse_key(self, dataset_id: str, user: str) -> str:
        """Return what must match for a previous export to be returned again."""
        parts = [dataset_id, user, self.query_json, self.bucket, self.path, self.include_bom]
        return json.dumps(parts, sort_keys=True, default=str)

    def summary(self) -> dict[str, Any]:
        """Return the request for the control API, without any secret."""
        return {
            "bucket": self.bucket,
            "path": self.path,
            "region": self.region,
            "columns": list(self.query.names),
            "where": self.query_json.get("where"),
            "group_by": self.query_json.get("groupByColumns") or [],
            "order_by": self.query_json.get("orderByColumns") or [],
            "includeBOM": self.include_bom,
            "useCache": self.use_cache,
            "source": self.source,
            "aws_access_key_id": self.access_key,
            "had_session_token": self.session_token is not None,
            "kms_key_id": self.kms_key,
        }


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ApiError(400, f"'{name}' must be an object")
    return value


def _flag(container: Mapping[str, Any], name: str) -> bool:
    value = container.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"'queryRequest.{name}' must be a boolean")
    return value


def _compile(query: Mapping[str, Any], spec: DatasetSpec) -> RowQuery:
    try:
        return build_query(
            spec,
            columns=column_names(query.get("columns"), "columns"),
            where=query.get("where"),
            group_by=column_names(query.get("groupByColumns"), "groupByColumns"),
            order=order_items(query.get("orderByColumns")),
        )
    except QueryError as exc:
        raise ApiError(400, str(exc)) from exc


@dataclass
class ExportRecord:
    """One export and everything the sandbox knows about it.

    Mutable fields change under the engine's lock only.
    """

    export_id: str
    dataset_id: str
    user: str
    request: ExportRequest
    reuse_key: str
    data_version: int
    compression: str
    behaviour: Behaviour
    started_ms: int
    status: str = STATUS_EXPORTING
    finished_ms: int | None = None
    url_row_counts: dict[str, int] | None = None
    object_keys: list[str] = field(default_factory=list)
    error_code: str | None = None
    message: str | None = None
    times_returned: int = 0
    credential_kind: str | None = None
    session_policy: Mapping[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """Return the export object as Domo's API shows it."""
        style = self.behaviour.timestamp_style
        return export_object(
            export_id=self.export_id,
            status=self.status,
            started=format_timestamp(self.started_ms, style),
            finished=format_timestamp(self.finished_ms, style),
            url_row_counts=dict(self.url_row_counts) if self.url_row_counts else None,
            compression=None if self.behaviour.omit_compression else self.compression,
            bucket=self.request.bucket,
            error_code=self.error_code,
            message=self.message,
        )

    def to_control(self) -> dict[str, Any]:
        """Return the export with the sandbox's internal detail (no secrets)."""
        return {
            "dataset_id": self.dataset_id,
            "export_id": self.export_id,
            "status": self.status,
            "created": self.started_ms,
            "finished": self.finished_ms,
            "user": self.user,
            "data_version": self.data_version,
            "times_returned": self.times_returned,
            "url_row_count_map": self.url_row_counts,
            "object_keys": list(self.object_keys),
            "error_code": self.error_code,
            "message": self.message,
            "request": {
                **self.request.summary(),
                "credential_kind": self.credential_kind,
                "session_policy": self.session_policy,
            },
        }


def export_object(
    *,
    export_id: str,
    status: str,
    started: object,
    finished: object,
    url_row_counts: Mapping[str, object] | None,
    compression: str | None,
    bucket: str,
    error_code: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """Return an export object in the shape of Domo's API (timestamps already formatted)."""
    return {
        "exportId": export_id,
        "exportStatus": status,
        "started": started,
        "finished": finished,
        "urlRowCountMap": url_row_counts,
        "compression": compression,
        "exportFormat": EXPORT_FORMAT,
        "bucket": bucket,
        "errorCode": error_code,
        "message": message,
        "queuePosition": 1 if status == STATUS_NONE else 0,
    }


def format_timestamp(epoch_ms: int | None, style: str) -> int | str | None:
    """Return a time as a DataSet's timestamp style shows it: ``epoch_ms`` or ``iso``."""
    if epoch_ms is None or style == "epoch_ms":
        return epoch_ms
    return iso_from_ms(epoch_ms)


def with_toe(message: str) -> str:
    """Return an export failure message ending with a toe, as Domo's do."""
    return f"{message} (toe: {new_toe()})"


def object_url(style: str, bucket: str, region: str, key: str) -> str:
    """Return an object's URL in a ``urlRowCountMap`` key form: s3, virtual or path."""
    if style == "s3":
        return f"s3://{bucket}/{key}"
    quoted = quote(key, safe=URL_SAFE_CHARACTERS)
    if style == "virtual":
        return f"https://{bucket}.s3.{region}.amazonaws.com/{quoted}"
    return f"https://s3.{region}.amazonaws.com/{bucket}/{quoted}"


def csv_value(value: object) -> str:
    """Return a cell as it appears in an export file (null as an empty field)."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def render_csv(header: Sequence[str], rows: Iterable[Row], include_bom: bool) -> bytes:
    """Return one export file's CSV bytes (UTF-8, optional BOM, header row first)."""
    buffer = io.StringIO()
    if include_bom:
        buffer.write(UTF8_BOM)
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator=CSV_LINE_TERMINATOR)
    writer.writerow(header)
    writer.writerows([csv_value(value) for value in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


def file_names(file_count: int, compression: str) -> list[str]:
    """Return the export's file names: ``data.csv[.gz]`` or numbered ``data-00000...``."""
    extension = FILE_EXTENSIONS[compression]
    if file_count == 1:
        return [f"data{extension}"]
    return [f"data-{index:05d}{extension}" for index in range(file_count)]


def file_keys(
    path: str, export_id: str, file_count: int, compression: str, layout: str
) -> list[str]:
    """Return the keys of an export's files under `layout` (see ``Behaviour.key_layout``)."""
    folder = f"{path}/{export_id}"
    if layout == BARE_LAYOUT:
        return [f"{folder}/{name}" for name in file_names(file_count, compression)]
    if layout == NESTED_LAYOUT:
        (name,) = file_names(1, compression)
        return [f"{folder}/{EXPORT_FOLDER}/{index:05d}/{name}" for index in range(file_count)]
    return [f"{folder}/{EXPORT_FOLDER}/{name}" for name in file_names(file_count, compression)]


def file_header(names: Sequence[str], index: int, file_count: int, wrong_files: int) -> list[str]:
    """Return the header row of file `index`: the names, the first one renamed in the last
    `wrong_files` files (``Behaviour.wrong_header_files``)."""
    header = list(names)
    if header and index >= file_count - wrong_files:
        header[0] += RENAMED_SUFFIX
    return header


def chunked(rows: Sequence[Row], size: int) -> list[Sequence[Row]]:
    """Split rows into chunks of at most `size` (always at least one, maybe empty)."""
    return [rows[start : start + size] for start in range(0, len(rows), size)] or [rows]


Permission = tuple[str, str, Mapping[str, str]]  # action, resource, condition keys


def write_permissions(
    request: ExportRequest, keys: Sequence[str], kms_key: str | None, multipart: bool
) -> list[Permission]:
    """Return what IAM checks to write `keys` for `request`: PutObject on each object (with the
    bucket owner's account as ``s3:ResourceAccount``), and with SSE-KMS (`kms_key`: the key's
    ARN), GenerateDataKey on the key, and Decrypt too for a multipart upload (S3 decrypts the
    parts' data keys to complete it)."""
    owner = bucket_owner(request.bucket)
    context = {S3_RESOURCE_ACCOUNT: owner} if owner else {}
    needed: list[Permission] = [
        (S3_PUT_OBJECT, object_arn(request.bucket, key), context) for key in keys
    ]
    if kms_key is not None:
        needed.append((KMS_GENERATE_DATA_KEY, kms_key, {}))
        if multipart:
            needed.append((KMS_DECRYPT, kms_key, {}))
    return needed


def encryption_key(request: ExportRequest, writer_account: str) -> str | None:
    """Return the ARN of the KMS key S3 encrypts the files with: ``awsKmsKey`` (a key id or
    alias name looked up in `writer_account`), else the bucket's default SSE-KMS key (looked
    up in the bucket owner's account); None without SSE-KMS.

    Raises:
        ExportWriteError: When the key does not exist, as S3 refuses such a write.
    """
    named = request.kms_key
    account = writer_account
    if named is None:
        named = bucket_default_kms_key(request.bucket)
        account = bucket_owner(request.bucket) or ACCOUNT_ID
    if named is None:
        return None
    arn = kms_key_arn(named, request.region, account)
    if arn is None:
        raise ExportWriteError(
            f"S3 rejected the write (KMS.NotFoundException): Invalid keyId '{named}' (no such "
            f"KMS key in region {request.region} of account {account} or the one its ARN "
            "names); hand Domo a key that exists"
        )
    return arn


def _denial(
    issued: IssuedCredentials, action: str, resource: str, context: Mapping[str, str]
) -> str | None:
    """The session policy's refusal of `action` on `resource`, or None when it allows it.

    Raises:
        ExportWriteError: If the policy needs what the sandbox does not evaluate.
    """
    try:
        return issued.denial(action, resource, context)
    except UnsupportedPolicyError as exc:
        raise ExportWriteError(
            f"The sandbox cannot evaluate the session policy of access key "
            f"{issued.access_key_id} for {action} on {resource}: {exc}"
        ) from exc


class ExportEngine:
    """Starts exports, runs them in worker threads and keeps every export record.

    Args:
        s3_endpoint: Returns the moto server's URL (the workers' S3 endpoint).
        sts: The sandbox STS's ledger: which credentials it minted, with what session
            policy and expiration (the workers enforce them as S3 would).
    """

    def __init__(self, s3_endpoint: Callable[[], str], sts: StsLedger) -> None:
        self._s3_endpoint = s3_endpoint
        self._sts = sts
        self._lock = threading.RLock()
        self._records: list[ExportRecord] = []
        # Injected history: raw export objects per DataSet, listed but never run or reused.
        self._history: dict[str, list[Any]] = {}
        # DataSets whose injected history holds an export Domo believes still runs.
        self._blocked: set[str] = set()
        self._workers: list[threading.Thread] = []
        self._cancel = threading.Event()
        # boto3 clients are thread-safe and costly to build: one per endpoint and credentials.
        self._clients: dict[tuple[str | None, ...], Any] = {}

    def records(self, dataset_id: str | None = None) -> list[ExportRecord]:
        """Return the export records, oldest first, optionally of one DataSet only."""
        with self._lock:
            return [r for r in self._records if dataset_id in (None, r.dataset_id)]

    def api_objects(self, dataset_id: str) -> list[Any]:
        """Return the DataSet's export objects as the API shows them, injected history last."""
        with self._lock:
            objects: list[Any] = [record.to_api() for record in self.records(dataset_id)]
            objects.extend(self._history.get(dataset_id, ()))
            return objects

    def add_history(self, dataset_id: str, entries: Iterable[Any], blocking: bool = False) -> None:
        """Add raw entries to what the DataSet's export list shows.

        Args:
            dataset_id: DataSet id.
            entries: JSON values, listed verbatim; the engine never runs or reuses them.
            blocking: Refuse every new export of the DataSet from now on (until `reset`), as
                Domo does while it believes one of these entries is still running.
        """
        with self._lock:
            self._history.setdefault(dataset_id, []).extend(entries)
            if blocking:
                self._blocked.add(dataset_id)

    def control_objects(self, dataset_id: str | None = None) -> list[dict[str, Any]]:
        """Return the export records as the control API shows them."""
        with self._lock:
            return [record.to_control() for record in self.records(dataset_id)]

    def submit(
        self,
        dataset: Dataset,
        user: User,
        request: ExportRequest,
        behaviour: Behaviour,
        visible: Predicate,
    ) -> tuple[int, dict[str, Any]]:
        """Return a previous or running export, or start a new one.

        Args:
            dataset: The DataSet (its rows are snapshot now).
            user: The requesting user.
            request: The validated request.
            behaviour: The DataSet's behaviour (snapshot into the record).
            visible: The user's PDP filter.

        Returns:
            The HTTP status and the export object.

        Raises:
            ApiError: 400 when an export of the DataSet is running and the behaviour says so,
                or a blocking entry of the injected history says so.
        """
        key = request.reuse_key(dataset.spec.id, user.name)
        with self._lock:
            previous = self._reusable(dataset, key, behaviour.previous_export)
            if previous is None:
                previous = self._busy(dataset.spec.id, behaviour)
            if previous is not None:
                previous.times_returned += 1
                return 200, previous.to_api()
            record = self._new_record(dataset, user, request, behaviour, key)
            if behaviour.post_answer == REJECT_POST:
                self._fail(record, EXPORT_REJECTED, REJECTED_MESSAGE)
                return 200, record.to_api()
            self._start_worker(record, dataset.rows(), visible)
            return behaviour.new_export_status_code, record.to_api()

    def reset(self) -> None:
        """Stop every worker and forget every export."""
        self.stop()
        with self._lock:
            self._records.clear()
            self._history.clear()
            self._blocked.clear()
            self._cancel = threading.Event()

    def stop(self) -> None:
        """Cancel running workers and wait for them to end."""
        with self._lock:
            self._cancel.set()
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.join(WORKER_JOIN_SECONDS)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _reusable(self, dataset: Dataset, key: str, rule: str) -> ExportRecord | None:
        """Return the export a POST on unchanged data answers with, or None.

        The latest successful export of the DataSet (`rule` ``any_request``) or of the same
        request (``same_request``), if it was made from the current data.
        """
        for record in reversed(self._records):
            if record.dataset_id != dataset.spec.id or record.status != STATUS_SUCCESS:
                continue
            if rule == SAME_REQUEST and record.reuse_key != key:
                continue
            return record if record.data_version == dataset.version else None
        return None

    def _busy(self, dataset_id: str, behaviour: Behaviour) -> ExportRecord | None:
        """Apply the one-active-export rule: return the running export to answer with.

        Raises:
            ApiError: 400 when an export runs and `busy_behaviour` is ``error``, or the
                injected history holds a blocking entry.
        """
        running = self._running(dataset_id)
        if running is not None and behaviour.busy_behaviour != "error":
            return running
        if running is not None or dataset_id in self._blocked:
            raise ApiError(400, f"An export is already in progress for DataSet {dataset_id}")
        return None

    def _running(self, dataset_id: str) -> ExportRecord | None:
        for record in self._records:
            if record.dataset_id == dataset_id and record.status in ACTIVE_STATUSES:
                return record
        return None

    def _new_record(
        self, dataset: Dataset, user: User, request: ExportRequest, behaviour: Behaviour, key: str
    ) -> ExportRecord:
        issued = self._sts.lookup(request.access_key)
        record = ExportRecord(
            export_id=str(uuid.uuid4()),
            dataset_id=dataset.spec.id,
            user=user.name,
            request=request,
            reuse_key=key,
            data_version=dataset.version,
            compression=dataset.spec.compression,
            behaviour=behaviour,
            started_ms=now_ms(),
            status=STATUS_NONE if behaviour.queue_seconds > 0 else STATUS_EXPORTING,
            credential_kind=credential_kind(request.access_key, issued),
            session_policy=issued.session_policy if issued else None,
        )
        self._records.append(record)
        return record

    def _start_worker(self, record: ExportRecord, rows: Sequence[Row], visible: Predicate) -> None:
        self._workers = [worker for worker in self._workers if worker.is_alive()]
        worker = threading.Thread(
            target=self._run,
            args=(record, rows, visible, self._cancel),
            name=f"domo-sandbox-export-{record.export_id[:8]}",
            daemon=True,
        )
        self._workers.append(worker)
        worker.start()

    def _run(
        self, record: ExportRecord, rows: Sequence[Row], visible: Predicate, cancel: threading.Event
    ) -> None:
        behaviour = record.behaviour
        if cancel.wait(behaviour.queue_seconds):
            return
        self._update(record, status=STATUS_EXPORTING)
        if cancel.wait(behaviour.export_seconds):
            return
        if behaviour.export_outcome == "stuck":
            cancel.wait()
            return
        if behaviour.export_outcome == "error":
            self._fail(record, EXPORT_FAILED, "The export failed")
            return
        try:
            counts = self._write(record, rows, visible, cancel)
        except ExportWriteError as exc:
            self._fail(record, S3_WRITE_FAILED, str(exc))
            return
        if counts is not None:
            self._update(record, status=STATUS_SUCCESS, finished_ms=now_ms(), url_row_counts=counts)

    def _write(
        self, record: ExportRecord, rows: Sequence[Row], visible: Predicate, cancel: threading.Event
    ) -> dict[str, int] | None:
        """Write the files; return urlRowCountMap, or None when cancelled."""
        request, behaviour = record.request, record.behaviour
        if request.access_key.startswith(TEMPORARY_KEY_PREFIX) and not request.session_token:
            raise ExportWriteError(
                "S3 rejected the credentials (InvalidToken): temporary credentials need a "
                "sessionToken"
            )
        chunks = chunked(request.query.run(rows, visible), behaviour.rows_per_file)
        keys = file_keys(
            request.path, record.export_id, len(chunks), record.compression, behaviour.key_layout
        )
        self._authorize(request, keys, behaviour.upload == MULTIPART_UPLOAD)
        counts: dict[str, int] = {}
        client = self._client(request)
        for index, (key, chunk) in enumerate(zip(keys, chunks, strict=True)):
            if cancel.is_set():
                return None
            if not behaviour.omit_object:
                header = file_header(
                    request.query.names, index, len(chunks), behaviour.wrong_header_files
                )
                self._put(client, record, key, header, chunk, behaviour.flip_bom)
            url = object_url(behaviour.url_style, request.bucket, request.region, key)
            counts[url] = len(chunk) + (behaviour.misreport_rows if index == 0 else 0)
        return counts

    def _authorize(self, request: ExportRequest, keys: Sequence[str], multipart: bool) -> None:
        """Refuse the write, before any object is written, as S3 would: with a KMS key that
        does not exist; and for credentials the sandbox's STS minted, once they expired, or when
        their session policy does not allow every write (and the KMS actions SSE-KMS needs:
        ``awsKmsKey``'s, or the bucket's default key's).

        Raises:
            ExportWriteError: Naming the refused action and resource.
        """
        issued = self._sts.lookup(request.access_key)
        if issued is not None and issued.expired():
            raise ExportWriteError(
                "S3 rejected the credentials (ExpiredToken): the provided token has expired "
                f"(access key {issued.access_key_id}, expired {issued.expiration.isoformat()}); "
                "hand Domo fresh temporary credentials"
            )
        writer = (issued.account_id if issued is not None else None) or ACCOUNT_ID
        kms_key = encryption_key(request, writer)
        if issued is None:
            return
        for action, resource, context in write_permissions(request, keys, kms_key, multipart):
            denial = _denial(issued, action, resource, context)
            if denial is not None:
                raise ExportWriteError(
                    f"S3 rejected the write (AccessDenied): {denial}; {DENIED_WRITE_HINT}"
                )

    def _client(self, request: ExportRequest) -> Any:
        """The S3 client for the request's credentials and region (built once, then shared)."""
        endpoint = self._s3_endpoint()
        key = (endpoint, request.access_key, request.secret, request.session_token, request.region)
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            client = make_client(
                "s3",
                endpoint,
                request.access_key,
                request.secret,
                request.session_token,
                request.region,
            )
            with self._lock:
                kept = self._clients.setdefault(key, client)
            if kept is not client:  # another worker built one first
                client.close()
            client = kept
        return client

    def _put(
        self,
        client: Any,
        record: ExportRecord,
        key: str,
        header: Sequence[str],
        rows: Sequence[Row],
        flip_bom: bool = False,
    ) -> None:
        request = record.request
        body = render_csv(header, rows, request.include_bom != flip_bom)
        if record.compression == "gzip":
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        extra = {}
        if request.kms_key:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": request.kms_key}
        where = {"Bucket": request.bucket, "Key": key}
        content_type = CONTENT_TYPES[record.compression]
        try:
            if record.behaviour.upload == MULTIPART_UPLOAD:
                upload = client.create_multipart_upload(**where, ContentType=content_type, **extra)[
                    "UploadId"
                ]
                part = client.upload_part(**where, UploadId=upload, PartNumber=1, Body=body)
                client.complete_multipart_upload(
                    **where,
                    UploadId=upload,
                    MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
                )
            else:
                client.put_object(**where, Body=body, ContentType=content_type, **extra)
        except (BotoCoreError, ClientError) as exc:
            raise ExportWriteError(f"Writing s3://{request.bucket}/{key} failed: {exc}") from exc
        with self._lock:
            record.object_keys.append(key)

    def _fail(self, record: ExportRecord, code: str, message: str) -> None:
        self._update(
            record,
            status=STATUS_ERROR,
            finished_ms=now_ms(),
            error_code=code,
            message=with_toe(message),
        )

    def _update(self, record: ExportRecord, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(record, name, value)
