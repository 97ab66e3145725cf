"""Discovery: which Domo DataSets a component exports, read from Domo once and stored as state.

``dg utils refresh-defs-state`` (and ``dg dev``) call :func:`refresh`: it reads Domo's DataSet
listing (the platform API's pages of 50 with OAuth, the instance search API otherwise), keeps
the DataSets the :class:`DataSetSelector` picks, reads the DataSets of hand-listed exports
that the listing did not hold (one the token cannot see fails the refresh, naming its export),
reads each kept DataSet's schema and its owner's e-mail address, and returns a
:class:`DiscoveryState`, written as JSON. Loading reads that file back and makes no Domo call:
:func:`discovered_entries` turns the selected DataSets into catalog entries through the export
template, and :func:`with_domo_details` puts Domo's description, owner, link and column schema
on every export's spec.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from domo_assets.dagster_names import COLUMN_SCHEMA_KEY
from domo_assets.domo.endpoints import dataset_page_url
from domo_assets.domo.errors import DomoError
from domo_assets.domo.models import DataSetColumn, DataSetOwner, DataSetSummary, parse_timestamp

if TYPE_CHECKING:
    from domo_assets.catalog import ExportConfig
    from domo_assets.domo.client import DomoClient

logger = logging.getLogger(__name__)

# Bumped when the state file's layout changes: an older file then fails the load, asking for a
# refresh, instead of being half read.
STATE_FORMAT = 1
DEFAULT_NAME_TEMPLATE = "{slug}"
DEFAULT_PATH_TEMPLATE = "domo/{slug}"
SHORT_ID_LENGTH = 8
# The DataSet's page in Domo: on the specs (with discovery state) and every materialization.
DATASET_URL_KEY = "domo/dataset_url"
OWNER_KEY = "domo/owner"
# What discovery adds to a spec from Domo: a node defined by a catalog without discovery state
# is the same node without them (ownership.DataSetNodes).
DOMO_DETAIL_KEYS = (DATASET_URL_KEY, COLUMN_SCHEMA_KEY, OWNER_KEY)
LISTING_PLATFORM = "platform"
LISTING_SEARCH = "search"
REFRESH_COMMAND = "dg utils refresh-defs-state"
# The placeholders an export template's name and path may use.
PLACEHOLDERS = ("slug", "id", "short_id")
# A Dagster owner: an e-mail address (team:name owners come from the catalog's owners).
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")


class DiscoveryError(ValueError):
    """Discovery cannot go on: the message names the file, the DataSet or export, and the fix."""


class DataSetSelector(dg.Model):
    """Which DataSets of Domo's listing become exports.

    A DataSet is selected when its id is in ``ids``, or when it matches every other filter
    given (each filter: any of its values) and no ``exclude_names`` pattern.
    """

    ids: list[str] = Field(
        default_factory=list,
        description="DataSet ids selected whatever the other filters say; one Domo does not "
        "list for these credentials fails the refresh.",
    )
    names: list[str] = Field(
        default_factory=list,
        description="Glob patterns over the DataSet's name in Domo, case-insensitive (e.g. "
        "'sales*', '*orders*'; '*' for every DataSet).",
    )
    exclude_names: list[str] = Field(
        default_factory=list,
        description="Glob patterns of DataSet names never selected by names, owners or tags.",
    )
    owners: list[str] = Field(
        default_factory=list,
        description="The DataSet's owner: a Domo user id, display name or e-mail address.",
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Domo tags, any of them (the instance search API's listing carries tags; "
        "the platform API's does not, so a tag filter fails the refresh when OAuth is used).",
    )

    @property
    def filters(self) -> bool:
        """Whether anything but ``ids`` selects."""
        return bool(self.names or self.owners or self.tags)

    def fingerprint(self) -> str:
        """A digest of the selection, stored with the state: a changed selector is stale state."""
        text = json.dumps(self.model_dump(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def select(self, listing: Sequence[DataSetSummary], source: str) -> list[DataSetSummary]:
        """The selected DataSets, in listing order.

        Raises:
            DiscoveryError: Nothing is asked for, an id is not listed, or a tag filter meets a
                listing that does not say a DataSet's tags.
        """
        if not self.ids and not self.filters:
            raise DiscoveryError(
                f"{source}: discover.select selects nothing: give ids, names (e.g. ['*'] for "
                "every DataSet), owners or tags"
            )
        listed = {dataset.dataset_id for dataset in listing}
        missing = [dataset_id for dataset_id in self.ids if dataset_id not in listed]
        if missing:
            raise DiscoveryError(
                f"{source}: discover.select.ids: DataSet(s) {', '.join(missing)} are not in "
                "Domo's listing for these credentials: check the ids, and that the token's "
                "user may read them"
            )
        wanted = set(self.ids)
        return [d for d in listing if d.dataset_id in wanted or self._matches(d, source)]

    def _matches(self, dataset: DataSetSummary, source: str) -> bool:
        if not self.filters:
            return False
        name = dataset.name.lower()
        if any(fnmatch.fnmatchcase(name, p.lower()) for p in self.exclude_names):
            return False
        if self.names and not any(fnmatch.fnmatchcase(name, p.lower()) for p in self.names):
            return False
        if self.owners and not _owned_by(dataset.owner, self.owners):
            return False
        if self.tags:
            if dataset.tags is None:
                raise DiscoveryError(
                    f"{source}: discover.select.tags: Domo's listing did not say the tags of "
                    f"DataSet {dataset.dataset_id} ({dataset.name}): the platform API's listing "
                    "(used with OAuth client credentials) carries no tags. Select by names, "
                    "owners or ids, or drop client_id/client_secret so the instance search "
                    "API's listing (which has tags) is read"
                )
            wanted = {tag.lower() for tag in self.tags}
            return any(tag.lower() in wanted for tag in dataset.tags)
        return True


def _owned_by(owner: DataSetOwner | None, owners: Iterable[str]) -> bool:
    if owner is None:
        return False
    known = {owner.id, owner.name.lower(), (owner.email or "").lower()} - {""}
    return any(value.lower() in known or value in known for value in owners)


@dataclass(frozen=True)
class DiscoveryState:
    """What a refresh read of Domo: the stored state of one component instance.

    Attributes:
        instance_url: The Domo instance it was read from (for the DataSets' links).
        listing: ``platform`` or ``search``: which listing was read (None: no selector, only
            the hand-listed DataSets were read).
        selector: The fingerprint of the selector it was read for (None: no selector).
        refreshed_at: When it was read (ISO-8601, UTC).
        datasets: Every DataSet read: the selected ones and those of hand-listed exports.
        selected: The ids of the selected DataSets, in listing order.
    """

    instance_url: str
    listing: str | None
    selector: str | None
    refreshed_at: str
    datasets: tuple[DataSetSummary, ...]
    selected: tuple[str, ...]

    @cached_property
    def by_id(self) -> Mapping[str, DataSetSummary]:
        """The DataSets read, by id (built once: a load looks up every export's DataSet)."""
        return {dataset.dataset_id: dataset for dataset in self.datasets}

    def to_json(self) -> str:
        """The state as the JSON document stored for the instance."""
        return json.dumps(
            {
                "format": STATE_FORMAT,
                "instance_url": self.instance_url,
                "listing": self.listing,
                "selector": self.selector,
                "refreshed_at": self.refreshed_at,
                "selected": list(self.selected),
                "datasets": [_dataset_to_json(d) for d in self.datasets],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> DiscoveryState:
        """Read a stored state back.

        Raises:
            DiscoveryError: The file is not a state of this format; the message says to refresh.
        """
        try:
            data = json.loads(text)
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, not {STATE_FORMAT}")
            return cls(
                instance_url=str(data["instance_url"]),
                listing=data["listing"],
                selector=data["selector"],
                refreshed_at=str(data["refreshed_at"]),
                datasets=tuple(_dataset_from_json(item) for item in data["datasets"]),
                selected=tuple(str(i) for i in data["selected"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DiscoveryError(
                f"{where}: the stored DataSet state cannot be read ({exc}): run "
                f"`{REFRESH_COMMAND}` to read Domo again"
            ) from None


def _dataset_to_json(dataset: DataSetSummary) -> dict[str, Any]:
    owner = dataset.owner
    return {
        "id": dataset.dataset_id,
        "name": dataset.name,
        "description": dataset.description,
        "owner": owner and {"id": owner.id, "name": owner.name, "email": owner.email},
        "rows": dataset.row_count,
        "updated": dataset.updated.isoformat() if dataset.updated else None,
        "tags": list(dataset.tags) if dataset.tags is not None else None,
        "columns": [[column.name, column.type] for column in dataset.columns],
    }


def _dataset_from_json(item: Mapping[str, Any]) -> DataSetSummary:
    owner = item["owner"]
    return DataSetSummary(
        dataset_id=str(item["id"]),
        name=str(item["name"]),
        description=item["description"],
        owner=DataSetOwner(owner["id"], owner["name"], owner["email"]) if owner else None,
        row_count=item["rows"],
        updated=parse_timestamp(item["updated"]),
        tags=tuple(item["tags"]) if item["tags"] is not None else None,
        columns=tuple(DataSetColumn(name, kind) for name, kind in item["columns"]),
    )


@dataclass(frozen=True)
class HandListed:
    """A hand-listed export's DataSet, for the refresh (which must be able to read it).

    Attributes:
        dataset_id: The DataSet.
        label: The export, as catalog messages name it.
    """

    dataset_id: str
    label: str


def refresh(
    client: DomoClient,
    selector: DataSetSelector | None,
    hand_listed: Sequence[HandListed],
    source: str,
) -> DiscoveryState:
    """Read from Domo what the instance's definitions need: the selected DataSets and those of
    its hand-listed exports, each with its schema and its owner's e-mail address.

    Args:
        client: A client of the instance (OAuth configured: the platform listing is read).
        selector: The selection, or None when the instance only lists exports by hand.
        hand_listed: The hand-listed exports' DataSets.
        source: The instance's ``defs.yaml``, for messages.

    Raises:
        DiscoveryError: The selector selects nothing or names an unlisted id, or a hand-listed
            export's DataSet cannot be read with these credentials (the message names it).
        DomoError: Domo refused or failed a listing page or a schema read.
    """
    listing: tuple[DataSetSummary, ...] = ()
    selected: list[DataSetSummary] = []
    owners: dict[str, DataSetOwner] = {}
    if selector is not None:
        listing = client.list_datasets()
        if selector.owners:
            # An owner may be selected by e-mail address, which the listing does not carry.
            owners = _owner_emails(client, [d.owner for d in listing if d.owner], owners)
            listing = tuple(_with_owner(d, owners) for d in listing)
        selected = selector.select(listing, source)
    read = {dataset.dataset_id: dataset for dataset in selected}
    listed = {dataset.dataset_id: dataset for dataset in listing}
    for hand in hand_listed:
        if hand.dataset_id in read:
            continue
        if hand.dataset_id in listed:
            read[hand.dataset_id] = listed[hand.dataset_id]
            continue
        try:
            read[hand.dataset_id] = DataSetSummary.from_metadata(
                client.get_dataset(hand.dataset_id)
            )
        except DomoError as exc:
            raise DiscoveryError(
                f"{hand.label}: field 'dataset_id': Domo does not let these credentials read "
                f"DataSet {hand.dataset_id} ({exc.summary}): check the id, and give the token's "
                "user READ on it"
            ) from None
    owners = _owner_emails(client, [d.owner for d in read.values() if d.owner], owners)
    datasets = tuple(
        replace(_with_owner(dataset, owners), columns=client.get_columns(dataset.dataset_id))
        for dataset in read.values()
    )
    return DiscoveryState(
        instance_url=client.instance_url,
        listing=None
        if selector is None
        else (LISTING_PLATFORM if client.platform_auth is not None else LISTING_SEARCH),
        selector=selector.fingerprint() if selector is not None else None,
        refreshed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        datasets=datasets,
        selected=tuple(dataset.dataset_id for dataset in selected),
    )


def _with_owner(dataset: DataSetSummary, owners: Mapping[str, DataSetOwner]) -> DataSetSummary:
    """The DataSet with its owner as read (with an e-mail address), when read."""
    if dataset.owner is None or dataset.owner.id not in owners:
        return dataset
    return replace(dataset, owner=owners[dataset.owner.id])


def _owner_emails(
    client: DomoClient, owners: Sequence[DataSetOwner], known: Mapping[str, DataSetOwner]
) -> dict[str, DataSetOwner]:
    """``known`` and each other distinct owner with the e-mail address Domo's user record
    gives (one read each)."""
    found: dict[str, DataSetOwner] = dict(known)
    for owner in owners:
        if owner.id in found or owner.email:
            continue
        try:
            email = client.get_user(owner.id).email
        except DomoError as exc:
            # The owner stays named in the metadata; only the Dagster owner is not set.
            logger.warning(
                "Domo user %s (%s, a DataSet owner) cannot be read (%s): its DataSets' exports "
                "get no Dagster owner from Domo",
                owner.id,
                owner.name,
                exc.summary,
            )
            email = None
        found[owner.id] = replace(owner, email=email)
    return found


def read_state(state_path: Path, where: str) -> DiscoveryState:
    """The state stored at ``state_path`` (as Dagster hands it to the component).

    Raises:
        DiscoveryError: It cannot be read.
    """
    try:
        text = state_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DiscoveryError(
            f"{where}: the stored DataSet state at {state_path} cannot be read ({exc.strerror}): "
            f"run `{REFRESH_COMMAND}`"
        ) from None
    return DiscoveryState.from_json(text, where)


def missing_state_error(where: str, key: str) -> DiscoveryError:
    """The error of an instance with a selector and no stored state."""
    return DiscoveryError(
        f"{where}: discover: no DataSet listing is stored for this instance (state key {key!r}): "
        f"run `{REFRESH_COMMAND}` in the project (with the Domo connection's variables set) to "
        "read Domo's listing; `dg dev` refreshes it itself unless defs_state.refresh_if_dev is "
        "false. A deployment refreshes it when its image is built (LOCAL_FILESYSTEM) or into "
        "Dagster's state storage (VERSIONED_STATE_STORAGE)"
    )


def check_fresh(
    state: DiscoveryState,
    selector: DataSetSelector | None,
    hand_listed: Sequence[HandListed],
    where: str,
) -> None:
    """Refuse a state read for another selector, or lacking a hand-listed export's DataSet.

    Raises:
        DiscoveryError: The state is stale; the message says what changed and to refresh.
    """
    wanted = selector.fingerprint() if selector is not None else None
    if selector is not None and state.selector != wanted:
        raise DiscoveryError(
            f"{where}: discover.select changed since the DataSet listing was stored (at "
            f"{state.refreshed_at}): run `{REFRESH_COMMAND}` to read Domo's listing again"
        )
    known = state.by_id
    for hand in hand_listed:
        if hand.dataset_id not in known:
            raise DiscoveryError(
                f"{hand.label}: DataSet {hand.dataset_id} was added after the DataSet state was "
                f"stored (at {state.refreshed_at}): run `{REFRESH_COMMAND}` to read it"
            )


def slug(text: str) -> str:
    """``text`` as a name and path segment: lowercase letters, digits and ``_``, not starting
    with a digit (``Sales - EMEA 2024`` is ``sales_emea_2024``)."""
    cleaned = _NOT_SLUG.sub("_", text.lower()).strip("_")
    return cleaned if cleaned and not cleaned[0].isdigit() else f"d_{cleaned}"


def discovered_entries(
    state: DiscoveryState,
    template: Mapping[str, Any],
    hand_listed: Iterable[str],
    source: str,
) -> list[dict[str, Any]]:
    """The catalog entries of the selected DataSets, hand-listed DataSets left out (the hand
    entry wins), with the template's keys and its ``name`` and ``path`` patterns filled in.

    Args:
        state: The stored state.
        template: ``discover.export``: any catalog key; ``name`` and ``path`` may use the
            placeholders ``{slug}``, ``{id}`` and ``{short_id}``.
        hand_listed: The DataSet ids of the hand-listed exports.
        source: The instance's ``defs.yaml``, for messages.

    Raises:
        DiscoveryError: A pattern uses an unknown placeholder, or two DataSets get one name.
    """
    name_pattern = str(template.get("name") or DEFAULT_NAME_TEMPLATE)
    path_pattern = str(template.get("path") or DEFAULT_PATH_TEMPLATE)
    for field, pattern in (("name", name_pattern), ("path", path_pattern)):
        unknown = sorted(set(_TEMPLATE_FIELD.findall(pattern)) - set(PLACEHOLDERS))
        if unknown:
            raise DiscoveryError(
                f"{source}: discover.export.{field}: unknown placeholder(s) {unknown} in "
                f"{pattern!r}; use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )
    skip = set(hand_listed)
    known = state.by_id
    entries: list[dict[str, Any]] = []
    names: dict[str, DataSetSummary] = {}
    for dataset_id in state.selected:
        if dataset_id in skip:
            continue
        dataset = known[dataset_id]
        values = {
            "slug": slug(dataset.name or dataset.dataset_id),
            "id": dataset.dataset_id,
            "short_id": slug(dataset.dataset_id)[:SHORT_ID_LENGTH],
        }
        name = name_pattern.format(**values)
        first = names.setdefault(name, dataset)
        if first is not dataset:
            raise DiscoveryError(
                f"{source}: discover.export.name: DataSets {first.dataset_id} ({first.name!r}) "
                f"and {dataset.dataset_id} ({dataset.name!r}) both become export {name!r}: "
                "add {short_id} to the pattern (e.g. '{slug}_{short_id}'), exclude one with "
                "select.exclude_names, or list one by hand"
            )
        entries.append(
            {
                **template,
                "name": name,
                "path": path_pattern.format(**values),
                "dataset_id": dataset.dataset_id,
                "dataset_name": dataset.name or None,
            }
        )
    return entries


def column_schema(
    dataset: DataSetSummary, columns: Sequence[str] | None, label: str
) -> dg.TableSchema:
    """The DataSet's columns with Domo's types, only ``columns`` (in that order) when given.

    Raises:
        DiscoveryError: A chosen column is not in the DataSet's schema.
    """
    types = {column.name: column.type for column in dataset.columns}
    names = list(columns) if columns else list(types)
    unknown = [name for name in names if name not in types]
    if unknown:
        raise DiscoveryError(
            f"{label}: field 'columns': DataSet {dataset.dataset_id} ({dataset.name}) has no "
            f"column(s) {unknown} (its columns when last read: {sorted(types)}); fix the names, "
            f"or run `{REFRESH_COMMAND}` if the DataSet changed"
        )
    return dg.TableSchema(columns=[dg.TableColumn(name, types[name]) for name in names])


def with_domo_details(
    spec: dg.AssetSpec,
    dataset: DataSetSummary,
    instance_url: str,
    config: ExportConfig | None = None,
    label: str = "",
) -> dg.AssetSpec:
    """``spec`` with Domo's words on it: the DataSet's description (unless the entry has its
    own), its owner's e-mail address as a Dagster owner, a link to the DataSet, its owner's
    name and ``dagster/column_schema``.

    Args:
        spec: An export's spec, or a DataSet node's (``config`` None).
        dataset: The DataSet as stored.
        instance_url: The instance it was read from.
        config: The export's catalog entry (its ``columns`` narrow the schema).
        label: The export, as messages name it.
    """
    metadata: dict[str, Any] = {
        DATASET_URL_KEY: dg.MetadataValue.url(dataset_page_url(instance_url, dataset.dataset_id)),
        COLUMN_SCHEMA_KEY: column_schema(dataset, config.columns if config else None, label),
    }
    owners = list(spec.owners)
    if dataset.owner is not None:
        metadata[OWNER_KEY] = dataset.owner.name or dataset.owner.id
        email = dataset.owner.email
        if email and _EMAIL.match(email) and email not in owners:
            owners.append(email)
    own_description = config is not None and config.description
    description = spec.description
    if dataset.description and not own_description:
        description = dataset.description
    return spec.replace_attributes(
        description=description, owners=owners, metadata={**spec.metadata, **metadata}
    )
