"""`SandboxControl`: a small client of the sandbox's control API, for tests and scripts."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from .datasets import DEFAULT_SYNTHETIC_ROWS
from .s3_delays import DEFAULT_S3_DELAY_SECONDS
from .users import MAIN_USER

DEFAULT_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
CONTROL_PREFIX = "/_sandbox"
FINISHED_STATUSES = frozenset({"success", "error"})


class SandboxControlError(RuntimeError):
    """The control API answered with an error status.

    Attributes:
        status: HTTP status.
        body: Response body text.
    """

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Sandbox control API error {status}: {body}")
        self.status = status
        self.body = body


class SandboxControl:
    """Client of the control API (``/_sandbox/...``) of a running sandbox.

    Args:
        url: The sandbox's Domo URL (``Sandbox.domo_url``).
        timeout: Timeout of each HTTP call in seconds.
    """

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def health(self) -> bool:
        """Return True when the sandbox answers."""
        return self._call("GET", "/health").get("status") == "ok"

    def exports(self, dataset_id: str | None = None) -> list[dict[str, Any]]:
        """Return every export (optionally of one DataSet), oldest first, with internal detail:
        dataset_id, export_id, status, created, user, data_version, times_returned,
        url_row_count_map, object_keys, error_code, message and ``request`` (bucket, path,
        region, columns, where, includeBOM, aws_access_key_id, had_session_token,
        kms_key_id, credential_kind, session_policy...; never a secret)."""
        query = {"dataset_id": dataset_id} if dataset_id else None
        return self._call("GET", "/exports", query=query)

    def export_count(self, dataset_id: str) -> int:
        """Return how many exports the DataSet has had."""
        return len(self.exports(dataset_id))

    def wait_for_export(
        self, export_id: str, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        """Wait until an export is ``success`` or ``error`` and return its record.

        Raises:
            KeyError: If there is no such export.
            TimeoutError: If it does not finish within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            record = {r["export_id"]: r for r in self.exports()}[export_id]
            if record["status"] in FINISHED_STATUSES:
                return record
            if time.monotonic() > deadline:
                raise TimeoutError(f"Export {export_id} still {record['status']}")
            time.sleep(POLL_SECONDS)

    def requests(self) -> list[dict[str, Any]]:
        """Return the Domo API request log: method, path, status (None when no response
        was sent), time (epoch seconds), fault (the fault action applied, or None) and
        credentials (the kinds of credential the request carried: ``developer_token``,
        ``bearer``, ``basic``; never a value)."""
        return self._call("GET", "/requests")

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "/requests")

    def faults(self) -> list[dict[str, Any]]:
        """Return the fault rules with their remaining counts and hits."""
        return self._call("GET", "/faults")

    def add_fault(
        self,
        *,
        method: str = "*",
        path_regex: str = ".*",
        action: str = "status",
        status: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
        delay: float | None = None,
        times: int | None = 1,
        probability: float | None = None,
        shape: str | None = None,
        message: str | None = None,
        echo_secrets: bool = False,
    ) -> dict[str, Any]:
        """Add a fault rule and return it.

        Args:
            method: HTTP method to match, or ``*``.
            path_regex: Regex searched in the request path.
            action: ``status``, ``reset``, ``delay`` or ``drop_response``.
            status: Status of a ``status`` action (default 503).
            retry_after: ``Retry-After`` seconds of a ``status`` action.
            body: JSON body of a ``status`` action instead of Domo's error body.
            delay: Seconds of a ``delay`` action (default 1).
            times: How many matching requests to fault; None for every one.
            probability: Chance (0..1, seeded) that a matching request faults.
            shape: Form of a ``status`` answer: ``domo`` (Domo's JSON error body, the
                default), ``oauth`` (``{error, error_description}``), ``html`` (an error page)
                or ``bearer_challenge`` (no body, ``WWW-Authenticate: Bearer
                error="invalid_token", error_description="..."``).
            message: The answer's message (default ``Injected fault``).
            echo_secrets: End the message with every secret the request carried, as sent,
                JSON-escaped and percent-encoded.
        """
        optional = {
            "status": status,
            "retry_after": retry_after,
            "body": body,
            "delay": delay,
            "probability": probability,
            "shape": shape,
            "message": message,
        }
        rule = {
            "method": method,
            "path_regex": path_regex,
            "action": action,
            "times": times,
            "echo_secrets": echo_secrets,
        }
        rule.update({name: value for name, value in optional.items() if value is not None})
        return self._call("POST", "/faults", rule)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "/faults")

    def s3_delays(self) -> list[dict[str, Any]]:
        """Return the S3 delay rules: id, method, path_regex, delay, remaining, hits (requests
        held so far) and holding (requests held right now)."""
        return self._call("GET", "/s3/delays")

    def add_s3_delay(
        self,
        *,
        method: str = "*",
        path_regex: str = ".*",
        delay: float = DEFAULT_S3_DELAY_SECONDS,
        times: int | None = 1,
        skip: int = 0,
        fail_status: int | None = None,
    ) -> dict[str, Any]:
        """Hold matching requests to the moto server (S3, Glue, STS...) before moto answers.

        Args:
            method: HTTP method to match (``GET``, ``HEAD``, ``PUT``, ``POST``, ``DELETE``),
                or ``*``.
            path_regex: Regex searched in the request path (``/<bucket>/<key>`` for S3).
            delay: Seconds each matching request is held (at most 300), unless
                `clear_s3_delays` releases it first.
            times: How many matching requests to hold; None for every one.
            skip: How many matching requests to let through before holding any.
            fail_status: 500 or 503: answer each held request with that status and S3's XML
                error instead of passing it to moto (``delay`` 0 fails it at once).

        Returns:
            The rule (see `s3_delays`).
        """
        rule = {
            "method": method,
            "path_regex": path_regex,
            "delay": delay,
            "times": times,
            "skip": skip,
            "fail_status": fail_status,
        }
        return self._call("POST", "/s3/delays", rule)

    def clear_s3_delays(self) -> None:
        """Remove every S3 delay rule; the requests they hold proceed at once."""
        self._call("DELETE", "/s3/delays")

    def s3_calls(self) -> list[dict[str, Any]]:
        """Return the S3 request log since the last reset, oldest first: time, method, bucket,
        key, access_key_id (that signed it), expected_owner and source_expected_owner (the
        ExpectedBucketOwner headers it carried) and status; never a secret."""
        return self._call("GET", "/s3/calls")

    def clear_s3_calls(self) -> None:
        """Empty the S3 request log."""
        self._call("DELETE", "/s3/calls")

    def export_kms_key(self) -> dict[str, str]:
        """Return the seeded KMS key: ``alias`` (``alias/domo-exports``) and ``key_arn`` (moto
        draws a new key at each reset)."""
        return self._call("GET", "/kms")

    def behaviour(self, dataset_id: str) -> dict[str, Any]:
        """Return a DataSet's export behaviour."""
        return self._call("GET", f"/datasets/{quote(dataset_id)}/behaviour")

    def set_behaviour(self, dataset_id: str, **behaviour: Any) -> dict[str, Any]:
        """Change a DataSet's export behaviour and return all of it.

        Args:
            dataset_id: DataSet id.
            **behaviour: Any of export_outcome, export_seconds, queue_seconds,
                misreport_rows, omit_object, omit_compression, url_style, timestamp_style, busy_behaviour,
                new_export_status_code, rows_per_file, previous_export, post_answer,
                query_shape, sql_quotes, key_layout, wrong_header_files, flip_bom.
        """
        return self._call("POST", f"/datasets/{quote(dataset_id)}/behaviour", behaviour)

    def add_history(self, dataset_id: str, preset: str | None = None, **options: Any) -> list[str]:
        """Inject entries into what ``GET /api/query/v1/export/{id}`` lists; return their
        exportIds. The engine never runs or reuses them; `reset` removes them.

        Args:
            dataset_id: DataSet id.
            preset: ``malformed`` (an undocumented status, a null row count, an unreadable
                time), ``stale_exporting`` (options ``age_seconds``, default 3 days, and
                ``blocking``, default False: refuse new exports while it exists) or
                ``finished`` (option ``count``, default 10,000 old successful exports).
                None: append ``entries`` (a list of raw JSON values) verbatim.
            **options: The preset's options, or ``entries``.
        """
        body = {"preset": preset, **options} if preset is not None else options
        return self._call("POST", f"/datasets/{quote(dataset_id)}/history", body)["export_ids"]

    def mode(self) -> str:
        """Return the sandbox mode: ``default`` or ``strict``."""
        return self._call("GET", "/mode")["mode"]

    def set_mode(self, mode: str) -> None:
        """Switch the sandbox mode; every DataSet's behaviour gets its preset (``strict``:
        previous_export any_request, query_shape objects, sql_quotes mysql; ``default``:
        those fields' defaults). `reset` keeps the mode; `set_behaviour` may still override
        a field afterwards."""
        self._call("POST", "/mode", {"mode": mode})

    def change_dataset(self, dataset_id: str, rows: int = 1) -> int:
        """Append `rows` rows to a DataSet (new data) and return its new lastUpdated (ms)."""
        result = self._call("POST", f"/datasets/{quote(dataset_id)}/change", {"rows": rows})
        return result["last_updated"]

    def add_synthetic_datasets(self, count: int, rows: int = DEFAULT_SYNTHETIC_ROWS) -> list[str]:
        """Make sure synthetic DataSets ``0..count-1`` exist and return their ids, in order.

        Each has `rows` small rows (ID, Label, Amount), is readable by the main user and
        exports in the default time; ids are uuid5s of the index, the same on every run.
        Existing ones are kept as they are; `reset` drops the ones added here.
        """
        body = {"count": count, "rows": rows}
        return self._call("POST", "/datasets/synthetic", body)["ids"]

    def datasets(self) -> list[dict[str, Any]]:
        """Return every DataSet: id, name, row_count, columns, last_updated, behaviour..."""
        return self._call("GET", "/datasets")

    def true_row_count(
        self, dataset_id: str, where_sql: str | None = None, user: str = MAIN_USER
    ) -> int:
        """Return how many rows `user` sees (PDP applied) that match a SQL condition.

        Args:
            dataset_id: DataSet id.
            where_sql: A condition in the query endpoint's dialect, e.g. ``"Region" = 'West'``.
            user: User name (``analyst``, ``west_manager``, ``hr_admin``).
        """
        body = {"where_sql": where_sql, "user": user}
        return self._call("POST", f"/datasets/{quote(dataset_id)}/count", body)["count"]

    def set_oauth_expires_in(self, expires_in: int) -> None:
        """Set the lifetime (seconds) of access tokens issued from now on."""
        self._call("POST", "/oauth", {"expires_in": expires_in})

    def sts_calls(self) -> list[dict[str, Any]]:
        """Return the STS call log, oldest first: action, time, role_arn, role_session_name,
        name, duration_seconds, policy (parsed), policy_text, external_id_given,
        caller_access_key_id, issued_access_key_id, expiration, status and denied; never a
        secret access key or session token."""
        return self._call("GET", "/sts")

    def clear_sts_calls(self) -> None:
        """Empty the STS call log."""
        self._call("DELETE", "/sts")

    def deny_sts(self, actions: list[str]) -> list[str]:
        """Make these STS actions (``AssumeRole`` or ``sts:AssumeRole``...) answer 403
        AccessDenied until `reset`; return every action refused now. As in AWS, no policy can
        refuse ``GetCallerIdentity`` or ``GetSessionToken``: naming either is a 400."""
        return self._call("POST", "/sts/deny", {"actions": actions})["denied"]

    def expire_credentials(self, access_key_id: str) -> str:
        """Make credentials the sandbox's STS minted expired now; return their expiration.

        Domo's writes with them then fail with ExpiredToken.
        """
        body = {"access_key_id": access_key_id}
        return self._call("POST", "/sts/expire", body)["expiration"]

    def reset(self, s3: bool = True) -> None:
        """Put the sandbox back to its initial state (moto's S3 too, unless `s3` is False);
        the STS log is emptied and refused STS actions are allowed again."""
        self._call("POST", "/reset", {"s3": s3})

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        url = f"{self.url}{CONTROL_PREFIX}{path}" + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise SandboxControlError(exc.code, exc.read().decode("utf-8", "replace")) from exc
