"""The Domo API routes: instance API (``/api/...``), platform API (``/v1/...``) and OAuth."""

from __future__ import annotations

import fnmatch
import random
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .behaviour import OBJECTS_SHAPE
from .datasets import CREATED_MS, UPDATE_INTERVAL_MS, Dataset, DatasetSpec, PdpPolicy, iso_from_ms
from .exports import ExportRequest
from .query import QueryError, pdp_filter
from .sql import SqlResult, execute_sql
from .state import SandboxState
from .users import USERS, User
from .web import ApiError, Request, Response, Router, json_response

ID = r"(?P<id>[^/]+)"
STREAM_ID_BASE = 4_000
SHUFFLE_SEED = 7
OWNER_PERMISSIONS = "READ_WRITE_DELETE_SHARE_ADMIN"
READER_PERMISSIONS = "READ"
# The platform listing: `limit` defaults to 50 and may not exceed it.
LISTING_PAGE_MAX = 50
# The search API: count + offset reach at most this many results; its default page.
SEARCH_RESULTS_MAX = 10_000
SEARCH_DEFAULT_COUNT = 10
SEARCH_ENTITY = "dataset"


class DomoApi:
    """Route handlers of the Domo endpoints the project uses.

    Args:
        state: The sandbox state.
    """

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._shuffle = random.Random(SHUFFLE_SEED)

    def register(self, router: Router) -> None:
        """Add every Domo route to `router`."""
        router.add("GET", "/oauth/token", self.token)
        router.add("POST", "/oauth/token", self.token)
        router.add("GET", "/api/content/v2/users/me", self.me)
        router.add("GET", f"/api/content/v2/users/{ID}", self.user)
        router.add("GET", f"/v1/users/{ID}", self.user)
        router.add("POST", "/api/search/v1/query", self.search)
        router.add("GET", "/v1/datasets", self.list_datasets)
        router.add("POST", f"/api/query/v1/export/{ID}", self.start_export)
        router.add("GET", f"/api/query/v1/export/{ID}", self.list_exports)
        router.add("GET", f"/api/data/v3/datasources/{ID}", self.datasource)
        router.add("GET", f"/api/data/v2/datasources/{ID}/schemas/latest", self.schema)
        router.add("POST", f"/api/query/v1/execute/{ID}", self.execute)
        router.add("POST", f"/v1/datasets/query/execute/{ID}", self.execute)
        router.add("GET", f"/v1/datasets/{ID}", self.platform_dataset)
        router.add("GET", f"/v1/datasets/{ID}/policies", self.policies)

    def token(self, request: Request, match: re.Match[str]) -> Response:
        """``/oauth/token``: the client-credentials grant."""
        return self._state.auth.issue(request)

    def me(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/content/v2/users/me``: the token's user."""
        return json_response(self._state.auth.authenticate(request).to_api())

    def user(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/content/v2/users/{id}`` and ``GET /v1/users/{id}``: a user by id."""
        self._state.auth.authenticate(request)
        found = next((u for u in USERS.values() if str(u.id) == match["id"]), None)
        if found is None:
            raise ApiError(404, f"User {match['id']} not found")
        return json_response({**found.to_api(), "name": found.display_name, "email": found.email})

    def list_datasets(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /v1/datasets?limit=&offset=&sort=&nameLike=``: a bare array of the DataSets the
        bearer token's user may read, `limit` (at most 50, the default) from `offset`."""
        user = self._state.auth.authenticate(request)
        limit = _int_param(request, "limit", LISTING_PAGE_MAX)
        offset = _int_param(request, "offset", 0)
        if not 0 < limit <= LISTING_PAGE_MAX:
            raise ApiError(400, f"limit must be between 1 and {LISTING_PAGE_MAX}, not {limit}")
        if offset < 0:
            raise ApiError(400, f"offset must not be negative, not {offset}")
        datasets = self._visible(user)
        name_like = (request.param("nameLike") or "").lower()
        if name_like:
            datasets = [d for d in datasets if name_like in d.spec.name.lower()]
        if request.param("sort") in ("name", "+name"):
            datasets.sort(key=lambda d: d.spec.name.lower())
        return json_response([self._listing_item(d) for d in datasets[offset : offset + limit]])

    def search(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /api/search/v1/query``: DataSets whose name matches `query` (``*`` is a
        wildcard), in either documented body: ``{"entityList": [["dataset"]], ...}`` or the
        community clients' ``{"entities": ["DATASET"], ...}``. Hits are in ``searchObjects``."""
        user = self._state.auth.authenticate(request)
        body = request.json_object()
        entities = body.get("entityList", body.get("entities"))
        flat = [e for group in entities for e in group] if _nested(entities) else entities
        if not isinstance(flat, list) or [str(e).lower() for e in flat] != [SEARCH_ENTITY]:
            raise ApiError(400, "entityList must be [['dataset']] (or entities ['DATASET'])")
        count, offset = body.get("count", SEARCH_DEFAULT_COUNT), body.get("offset", 0)
        if not isinstance(count, int) or not isinstance(offset, int) or count < 1 or offset < 0:
            raise ApiError(400, "count must be a positive integer and offset not negative")
        if count + offset > SEARCH_RESULTS_MAX:
            raise ApiError(400, f"count + offset may not exceed {SEARCH_RESULTS_MAX}")
        pattern = str(body.get("query") or "*").lower()
        if "*" not in pattern:
            pattern = f"*{pattern}*"
        found = [
            d for d in self._visible(user) if fnmatch.fnmatchcase(d.spec.name.lower(), pattern)
        ]
        return json_response(
            {
                "searchObjects": [self._search_hit(d) for d in found[offset : offset + count]],
                "totalResultCount": len(found),
            }
        )

    def _visible(self, user: User) -> list[Dataset]:
        with self._state.lock:
            datasets = list(self._state.datasets.values())
        return [d for d in datasets if user.name in d.spec.readers]

    def _listing_item(self, dataset: Dataset) -> dict[str, Any]:
        """A DataSet as the platform API's listing (and, with more, its ``/v1/datasets/{id}``)
        describes it."""
        spec = dataset.spec
        with self._state.lock:
            row_count, last_updated = dataset.row_count, dataset.last_updated_ms
        owner = USERS[spec.owner]
        return {
            "id": spec.id,
            "name": spec.name,
            "description": spec.description,
            "rows": row_count,
            "columns": len(spec.columns),
            "owner": {"id": owner.id, "name": owner.display_name},
            "createdAt": iso_from_ms(CREATED_MS),
            "updatedAt": iso_from_ms(last_updated),
        }

    def _search_hit(self, dataset: Dataset) -> dict[str, Any]:
        spec = dataset.spec
        with self._state.lock:
            row_count, last_updated = dataset.row_count, dataset.last_updated_ms
        owner = USERS[spec.owner]
        return {
            "entityType": "DATASET",
            "databaseId": spec.id,
            "name": spec.name,
            "description": spec.description,
            "ownedById": str(owner.id),
            "ownedByName": owner.display_name,
            "rowCount": row_count,
            "columnCount": len(spec.columns),
            "lastUpdated": last_updated,
            "tags": list(spec.tags),
        }

    def start_export(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /api/query/v1/export/{id}``: start an export or return an earlier one."""
        user, dataset = self._readable(request, match)
        export_request = ExportRequest.parse(request.json_object(), dataset.spec)
        self._check_bucket(export_request)
        with self._state.lock:
            status, export = self._state.engine.submit(
                dataset,
                user,
                export_request,
                self._state.behaviours[dataset.spec.id],
                pdp_filter(dataset.spec, user.name),
            )
        return json_response(export, status)

    def list_exports(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/query/v1/export/{id}``: every export of the DataSet, in no order."""
        _, dataset = self._readable(request, match)
        exports = self._state.engine.api_objects(dataset.spec.id)
        return json_response([exports[index] for index in self._scrambled(len(exports))])

    def datasource(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/data/v3/datasources/{id}``: instance-API metadata."""
        user, dataset = self._readable(request, match)
        spec = dataset.spec
        with self._state.lock:
            row_count, last_updated = dataset.row_count, dataset.last_updated_ms
        body: dict[str, Any] = {
            "id": spec.id,
            "name": spec.name,
            "description": spec.description,
            "displayType": "api",
            "dataProviderType": "api",
            "rowCount": row_count,
            "columnCount": len(spec.columns),
            "created": CREATED_MS,
            "lastTouched": last_updated,
            "lastUpdated": last_updated,
            "nextUpdate": last_updated + UPDATE_INTERVAL_MS,
            "status": "SUCCESS",
            "state": "SUCCESS",
            "streamId": STREAM_ID_BASE + spec.seed,
            "owner": USERS[spec.owner].owner_ref(),
            "pdpEnabled": spec.pdp_enabled,
        }
        if "permission" in (request.param("part") or ""):
            owner = user.name == spec.owner
            body["permissions"] = OWNER_PERMISSIONS if owner else READER_PERMISSIONS
        return json_response(body)

    def schema(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/data/v2/datasources/{id}/schemas/latest``."""
        _, dataset = self._readable(request, match)
        columns = [
            {
                "name": column.name,
                "type": str(column.type),
                "id": column.name,
                "visible": True,
                "metadata": {"colLabel": column.name, "colFormat": "", "isEncrypted": False},
            }
            for column in dataset.spec.columns
        ]
        return json_response(
            {"schema": {"columns": columns}, "dataSourceId": dataset.spec.id, "version": 1}
        )

    def execute(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /api/query/v1/execute/{id}`` and ``POST /v1/datasets/query/execute/{id}``."""
        user, dataset = self._readable(request, match)
        sql = request.json_object().get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise ApiError(400, "'sql' is required")
        with self._state.lock:
            rows, behaviour = dataset.rows(), self._state.behaviours[dataset.spec.id]
        try:
            result = execute_sql(dataset.spec, rows, sql, user.name, behaviour.sql_quotes)
        except QueryError as exc:
            raise ApiError(400, str(exc)) from exc
        if behaviour.query_shape == OBJECTS_SHAPE:
            return json_response(_row_objects(result))
        return json_response(_query_body(dataset.spec, result))

    def platform_dataset(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /v1/datasets/{id}``: platform-API metadata."""
        _, dataset = self._readable(request, match)
        spec = dataset.spec
        item = self._listing_item(dataset)
        return json_response(
            {
                **item,
                "schema": {
                    "columns": [{"name": c.name, "type": str(c.type)} for c in spec.columns]
                },
                "dataCurrentAt": item["updatedAt"],
                "pdpEnabled": spec.pdp_enabled,
            }
        )

    def policies(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /v1/datasets/{id}/policies``: the PDP policies."""
        _, dataset = self._readable(request, match)
        return json_response([_policy(policy) for policy in dataset.spec.policies])

    def _scrambled(self, count: int) -> list[int]:
        """Return a seeded shuffle of ``range(count)`` that is never in order (count > 1)."""
        order = list(range(count))
        with self._state.lock:
            self._shuffle.shuffle(order)
        if order == sorted(order):
            order = order[1:] + order[:1]
        return order

    def _readable(self, request: Request, match: re.Match[str]) -> tuple[User, Dataset]:
        """Return the user and the DataSet of the path, if the user may read it.

        Raises:
            ApiError: 401 bad credentials, 404 unknown DataSet, 403 no READ right.
        """
        user = self._state.auth.authenticate(request)
        dataset_id = match["id"]
        dataset = self._state.datasets.get(dataset_id)
        if dataset is None:
            raise ApiError(404, f"DataSet {dataset_id} not found")
        if user.name not in dataset.spec.readers:
            raise ApiError(
                403, f"User {user.id} does not have READ permission on DataSet {dataset_id}"
            )
        return user, dataset

    def _check_bucket(self, export_request: ExportRequest) -> None:
        region = self._state.s3.bucket_region(export_request.bucket)
        if region is None:
            raise ApiError(400, f"The bucket '{export_request.bucket}' does not exist")
        if region != export_request.region:
            raise ApiError(
                400,
                f"Cross-region exports are not supported: bucket '{export_request.bucket}' is "
                f"in {region}, but the request's region is {export_request.region}",
            )


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.param(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, not {value!r}") from None


def _nested(entities: object) -> bool:
    return isinstance(entities, list) and all(isinstance(e, list) for e in entities)


def json_value(value: object) -> object:
    """Return a cell as the query endpoint's JSON shows it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _query_body(spec: DatasetSpec, result: SqlResult) -> dict[str, Any]:
    metadata = [
        {"type": str(kind), "dataSourceId": spec.id, "maxLength": -1, "minLength": -1}
        for kind in result.types
    ]
    return {
        "datasource": spec.id,
        "columns": list(result.columns),
        "metadata": metadata,
        "rows": [[json_value(value) for value in row] for row in result.rows],
        "numRows": len(result.rows),
        "numColumns": len(result.columns),
        "fromcache": False,
    }


def _row_objects(result: SqlResult) -> list[dict[str, Any]]:
    """Return the rows as the newer API reference shows them: one object per row, keys in
    column order."""
    return [
        {name: json_value(value) for name, value in zip(result.columns, row, strict=True)}
        for row in result.rows
    ]


def _policy(policy: PdpPolicy) -> dict[str, Any]:
    filters = []
    if not policy.all_rows:
        filters = [
            {
                "column": policy.column,
                "values": list(policy.values),
                "operator": "EQUALS",
                "not": False,
            }
        ]
    return {
        "id": policy.id,
        "type": "open" if policy.all_rows else "user",
        "name": policy.name,
        "filters": filters,
        "users": [USERS[name].id for name in policy.users],
        "virtualUsers": [],
        "groups": [],
    }
