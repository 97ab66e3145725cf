"""The control API under ``/_sandbox/``: inspect and steer the sandbox (JSON, no auth)."""

from __future__ import annotations

import re

from .datasets import DEFAULT_SYNTHETIC_ROWS
from .query import QueryError
from .s3 import EXPORT_KMS_ALIAS
from .sql import LENIENT_QUOTES, execute_sql
from .state import SandboxState
from .users import MAIN_USER, USERS
from .web import ApiError, Request, Response, Router, json_response

PREFIX = "/_sandbox"
DATASET = rf"{PREFIX}/datasets/(?P<id>[^/]+)"
DEFAULT_CHANGE_ROWS = 1


class ControlApi:
    """Route handlers of the control API.

    Args:
        state: The sandbox state.
    """

    def __init__(self, state: SandboxState) -> None:
        self._state = state

    def register(self, router: Router) -> None:
        """Add every control route to `router`."""
        router.add("GET", f"{PREFIX}/health", self.health)
        router.add("GET", f"{PREFIX}/exports", self.exports)
        router.add("GET", f"{PREFIX}/requests", self.requests)
        router.add("DELETE", f"{PREFIX}/requests", self.clear_requests)
        router.add("GET", f"{PREFIX}/faults", self.faults)
        router.add("POST", f"{PREFIX}/faults", self.add_fault)
        router.add("DELETE", f"{PREFIX}/faults", self.clear_faults)
        router.add("GET", f"{PREFIX}/s3/delays", self.s3_delays)
        router.add("POST", f"{PREFIX}/s3/delays", self.add_s3_delay)
        router.add("DELETE", f"{PREFIX}/s3/delays", self.clear_s3_delays)
        router.add("GET", f"{PREFIX}/s3/calls", self.s3_calls)
        router.add("DELETE", f"{PREFIX}/s3/calls", self.clear_s3_calls)
        router.add("GET", f"{PREFIX}/kms", self.kms)
        router.add("GET", f"{PREFIX}/datasets", self.datasets)
        router.add("POST", f"{PREFIX}/datasets/synthetic", self.add_synthetic)
        router.add("GET", f"{DATASET}/behaviour", self.behaviour)
        router.add("POST", f"{DATASET}/behaviour", self.set_behaviour)
        router.add("POST", f"{DATASET}/change", self.change)
        router.add("POST", f"{DATASET}/count", self.count)
        router.add("POST", f"{DATASET}/history", self.add_history)
        router.add("GET", f"{PREFIX}/mode", self.mode)
        router.add("POST", f"{PREFIX}/mode", self.set_mode)
        router.add("POST", f"{PREFIX}/oauth", self.oauth)
        router.add("GET", f"{PREFIX}/sts", self.sts_calls)
        router.add("DELETE", f"{PREFIX}/sts", self.clear_sts_calls)
        router.add("POST", f"{PREFIX}/sts/deny", self.deny_sts)
        router.add("POST", f"{PREFIX}/sts/expire", self.expire_credentials)
        router.add("POST", f"{PREFIX}/reset", self.reset)

    def health(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/health``."""
        return json_response({"status": "ok"})

    def exports(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/exports[?dataset_id=]``: every export with internal detail."""
        return json_response(self._state.engine.control_objects(request.param("dataset_id")))

    def requests(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/requests``: the Domo API request log."""
        return json_response(self._state.requests.entries())

    def clear_requests(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /_sandbox/requests``."""
        self._state.requests.clear()
        return json_response({"cleared": True})

    def faults(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/faults``: the rules with their remaining counts."""
        return json_response(self._state.faults.rules())

    def add_fault(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/faults``: add a rule."""
        try:
            rule = self._state.faults.add(request.json_object())
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        return json_response(rule.to_dict(), 201)

    def clear_faults(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /_sandbox/faults``."""
        self._state.faults.clear()
        return json_response({"cleared": True})

    def s3_delays(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/s3/delays``: the S3 delay rules with their hits and held requests."""
        return json_response(self._state.s3.delays.rules())

    def add_s3_delay(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/s3/delays`` ``{method, path_regex, delay, times, skip, fail_status}``: add a
        rule."""
        try:
            rule = self._state.s3.delays.add(request.json_object())
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        return json_response(rule.to_dict(), 201)

    def clear_s3_delays(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /_sandbox/s3/delays``: remove every rule, releasing what they hold."""
        self._state.s3.delays.clear()
        return json_response({"cleared": True})

    def s3_calls(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/s3/calls``: the S3 request log, oldest first (no secrets)."""
        return json_response(self._state.s3.s3_calls.entries())

    def clear_s3_calls(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /_sandbox/s3/calls``."""
        self._state.s3.s3_calls.clear()
        return json_response({"cleared": True})

    def kms(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/kms``: the seeded export key (its alias and ARN, new at each reset)."""
        return json_response(
            {"alias": EXPORT_KMS_ALIAS, "key_arn": self._state.s3.export_kms_key_arn}
        )

    def datasets(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/datasets``: ids, names, row counts, columns, versions."""
        with self._state.lock:
            listing = [
                {
                    "id": dataset.spec.id,
                    "name": dataset.spec.name,
                    "row_count": dataset.row_count,
                    "columns": [
                        {"name": c.name, "type": str(c.type)} for c in dataset.spec.columns
                    ],
                    "compression": dataset.spec.compression,
                    "pdp_enabled": dataset.spec.pdp_enabled,
                    "readers": sorted(dataset.spec.readers),
                    "data_version": dataset.version,
                    "last_updated": dataset.last_updated_ms,
                    "behaviour": self._state.behaviours[dataset.spec.id].to_dict(),
                }
                for dataset in self._state.datasets.values()
            ]
        return json_response(listing)

    def add_synthetic(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/datasets/synthetic`` ``{count, rows?}``: make sure synthetic
        DataSets ``0..count-1`` exist (deterministic ids); answers their ids in order."""
        body = request.json_object()
        count = _non_negative_int(body.get("count"), "count")
        rows = _non_negative_int(body.get("rows", DEFAULT_SYNTHETIC_ROWS), "rows")
        try:
            ids = self._state.add_synthetic_datasets(count, rows)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        return json_response({"ids": ids}, 201)

    def behaviour(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/datasets/{id}/behaviour``."""
        with self._state.lock:
            return json_response(self._state.behaviours[self._dataset_id(match)].to_dict())

    def set_behaviour(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/datasets/{id}/behaviour``: change some behaviour fields."""
        dataset_id = self._dataset_id(match)
        changes = request.json_object()
        with self._state.lock:
            try:
                behaviour = self._state.behaviours[dataset_id].updated(changes)
            except ValueError as exc:
                raise ApiError(400, str(exc)) from exc
            self._state.behaviours[dataset_id] = behaviour
        return json_response(behaviour.to_dict())

    def change(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/datasets/{id}/change`` ``{rows?}``: append rows (new data)."""
        dataset_id = self._dataset_id(match)
        rows = _non_negative_int(request.json_object().get("rows", DEFAULT_CHANGE_ROWS), "rows")
        with self._state.lock:
            dataset = self._state.datasets[dataset_id]
            dataset.append(rows)
            return json_response(
                {
                    "id": dataset_id,
                    "row_count": dataset.row_count,
                    "data_version": dataset.version,
                    "last_updated": dataset.last_updated_ms,
                }
            )

    def add_history(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/datasets/{id}/history`` ``{preset, ...options}`` or
        ``{entries}``: inject entries into the DataSet's export list; answers their ids."""
        dataset_id = self._dataset_id(match)
        try:
            export_ids = self._state.add_history(dataset_id, request.json_object())
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        return json_response({"export_ids": export_ids}, 201)

    def mode(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/mode``: ``{"mode": "default" | "strict"}``."""
        with self._state.lock:
            return json_response({"mode": self._state.mode})

    def set_mode(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/mode`` ``{mode}``: apply a mode's preset to every behaviour."""
        mode = request.json_object().get("mode")
        try:
            self._state.set_mode(mode)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        return json_response({"mode": mode})

    def count(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/datasets/{id}/count`` ``{where_sql?, user?}``: the true count
        of rows `user` may see that match the SQL condition (always read with lenient
        quotes: this is the sandbox's truth, not Domo's answer)."""
        dataset_id = self._dataset_id(match)
        body = request.json_object()
        user = body.get("user") or MAIN_USER
        if user not in USERS:
            raise ApiError(400, f"Unknown user {user!r}; known: {', '.join(USERS)}")
        where_sql = body.get("where_sql")
        sql = "SELECT COUNT(*) FROM table" + (f" WHERE {where_sql}" if where_sql else "")
        with self._state.lock:
            dataset = self._state.datasets[dataset_id]
            rows = dataset.rows()
        try:
            result = execute_sql(dataset.spec, rows, sql, user, LENIENT_QUOTES)
        except QueryError as exc:
            raise ApiError(400, str(exc)) from exc
        return json_response({"count": result.rows[0][0]})

    def oauth(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/oauth`` ``{expires_in}``: lifetime of new access tokens."""
        expires_in = _non_negative_int(request.json_object().get("expires_in"), "expires_in")
        self._state.auth.expires_in = expires_in
        return json_response({"expires_in": expires_in})

    def sts_calls(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /_sandbox/sts``: the STS call log, oldest first (no secrets)."""
        return json_response(self._state.s3.sts.calls())

    def clear_sts_calls(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /_sandbox/sts``."""
        self._state.s3.sts.clear_calls()
        return json_response({"cleared": True})

    def deny_sts(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/sts/deny`` ``{actions}``: refuse these STS actions (403
        AccessDenied) until reset; answers every refused action."""
        actions = request.json_object().get("actions")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ApiError(400, "'actions' must be a list of STS action names")
        try:
            denied = self._state.s3.sts.deny(actions)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        return json_response({"denied": denied})

    def expire_credentials(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/sts/expire`` ``{access_key_id}``: make credentials the sandbox's
        STS minted expired now."""
        access_key_id = request.json_object().get("access_key_id")
        if not isinstance(access_key_id, str):
            raise ApiError(400, "'access_key_id' must be a string")
        try:
            issued = self._state.s3.sts.expire(access_key_id)
        except KeyError as exc:
            raise ApiError(
                404,
                f"The sandbox's STS minted no credentials with access key id {access_key_id}: "
                "pass an AccessKeyId it answered",
            ) from exc
        return json_response(
            {"access_key_id": access_key_id, "expiration": issued.expiration.isoformat()}
        )

    def reset(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /_sandbox/reset`` ``{s3?: true}``: everything back to its initial state."""
        reset_s3 = request.json_object().get("s3", True)
        if not isinstance(reset_s3, bool):
            raise ApiError(400, "'s3' must be a boolean")
        self._state.reset(s3=reset_s3)
        return json_response({"reset": True, "s3": reset_s3})

    def _dataset_id(self, match: re.Match[str]) -> str:
        dataset_id = match["id"]
        if dataset_id not in self._state.datasets:
            raise ApiError(404, f"DataSet {dataset_id} not found")
        return dataset_id


def _non_negative_int(value: object, name: str) -> int:
    """Return `value` if it is a non-negative integer (not a bool).

    Raises:
        ApiError: 400 naming the field otherwise.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError(400, f"'{name}' must be a non-negative integer")
    return value
