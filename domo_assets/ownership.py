"""One owner per S3 prefix, and one definition per DataSet node, across the catalogs one process
loads.

A catalog file refuses overlapping prefixes among its own exports and those it includes
(:func:`domo_assets.catalog.check_prefix_owners`). A dg project may hold several
``DomoExportsComponent`` instances, and a project may load the classic catalog
(``domo_assets.definitions``) beside them: each builds its own definitions, so no single catalog
sees the others. :data:`PREFIX_OWNERS` records the prefixes each one claims when it builds, and
refuses a catalog whose prefixes equal or nest in another's of the same load, so ``dg check
defs``, ``dagster definitions validate`` and the code location's load fail with both exports
named, whichever is built last.

Scope: component instances are compared with the instances of the same project in the same load
(one ``ComponentTree``; a new load of the project starts afresh, and an instance built again
replaces its own claim), and with every classic catalog of the process; a classic catalog, which
Python imports once per process, with everything.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path

from dagster import AssetKey, AssetSpec

from domo_assets.catalog import Catalog, CatalogError, PrefixClaim, check_prefix_owners
from domo_assets.discovery import DOMO_DETAIL_KEYS


@dataclasses.dataclass
class _ProjectLoad:
    """The claims of one load of one project: its instances' prefixes, by instance.

    ``load`` is held, not its ``id()``: an id may be reused once a load is freed, which would
    mix a new load with an old one's claims (one load per project is kept, the latest).
    """

    load: object
    owners: dict[Hashable, tuple[PrefixClaim, ...]] = dataclasses.field(default_factory=dict)


class PrefixOwners:
    """The prefixes claimed in this process, by project load and catalog; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[Path, _ProjectLoad] = {}
        self._classic: dict[Hashable, tuple[PrefixClaim, ...]] = {}

    def claim_for_component(
        self, catalog: Catalog, *, project: Path, load: object, owner: Hashable
    ) -> None:
        """Record a component instance's prefixes, refusing any that overlap another's.

        Args:
            catalog: The instance's validated catalog.
            project: The dg project's root.
            load: The object standing for this load of the project (its ``ComponentTree``):
                claims of an earlier load are dropped, not compared.
            owner: The instance (its ``ComponentLoadContext.component_loc``); building it again
                replaces its claim.

        Raises:
            CatalogError: A prefix equals or nests in another instance's or a classic
                catalog's; the message names both exports.
        """
        with self._lock:
            current = self._projects.get(project)
            if current is None or current.load is not load:
                current = self._projects[project] = _ProjectLoad(load)
            others = _claims(current.owners, except_owner=owner)
            check_prefix_owners([*others, *_claims(self._classic), *catalog.prefix_claims])
            current.owners[owner] = catalog.prefix_claims

    def claim_for_classic(self, catalog: Catalog, *, owner: Hashable) -> None:
        """Record a classic catalog's prefixes (``DOMO_EXPORTS_FILE``), refusing overlaps with
        any other classic catalog and with every project's component instances.

        Args:
            catalog: The validated catalog.
            owner: The catalog (its file); claiming it again replaces its claim.

        Raises:
            CatalogError: A prefix equals or nests in another catalog's; the message names both
                exports.
        """
        with self._lock:
            classic = [*_claims(self._classic, except_owner=owner), *catalog.prefix_claims]
            # Projects are compared one at a time: two projects in one process (tests, tools)
            # are separate code locations and may reuse prefixes between them.
            projects = [list(_claims(p.owners)) for p in self._projects.values()] or [[]]
            for claims in projects:
                check_prefix_owners([*claims, *classic])
            self._classic[owner] = catalog.prefix_claims


def _claims(
    owners: dict[Hashable, tuple[PrefixClaim, ...]], except_owner: Hashable | None = None
) -> Iterator[PrefixClaim]:
    for owner, claims in owners.items():
        if owner != except_owner:
            yield from claims


# The process's record: one per process, as a code location is one process.
PREFIX_OWNERS = PrefixOwners()


# --- DataSet nodes --------------------------------------------------------------------------
#
# Exports of one DataSet share its lineage node, across catalogs too: two component instances
# (or an instance and a classic catalog) that export one DataSet get one node, defined (and
# observed) by the catalog that claimed it first in the load; the others depend on it by key.
# A key can be defined only once in a code location, so the specs must be the same.

# The spec attributes a message compares, in order, when two catalogs' nodes differ.
NODE_ATTRIBUTES = ("group_name", "metadata", "tags", "deps")
"""What must agree between two catalogs' specs of one DataSet node. Its description and owners
may differ (one catalog has Domo's, from discovery state; the first catalog built defines the
node), and so may the metadata discovery adds (``DOMO_DETAIL_KEYS``)."""


@dataclasses.dataclass(frozen=True)
class _Node:
    """A DataSet node as the catalog that defines it gave it."""

    spec: AssetSpec
    owner: Hashable
    source: str


@dataclasses.dataclass
class _NodeLoad:
    """The DataSet nodes the instances of one project load define (see ``_ProjectLoad``)."""

    load: object
    nodes: dict[AssetKey, _Node] = dataclasses.field(default_factory=dict)


class DataSetNodes:
    """Which catalog defines each DataSet node, by project load and among classic catalogs;
    thread-safe. Its scope is :class:`PrefixOwners`'s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[Path, _NodeLoad] = {}
        self._classic: dict[AssetKey, _Node] = {}

    def claim_for_component(
        self,
        specs: Sequence[AssetSpec],
        *,
        project: Path,
        load: object,
        owner: Hashable,
        source: str,
    ) -> list[AssetSpec]:
        """The DataSet nodes a component instance defines: those no classic catalog and no
        other instance of the load defines yet.

        Args:
            specs: The instance's DataSet node specs.
            project: The dg project's root.
            load: This load of the project (its ``ComponentTree``).
            owner: The instance (building it again replaces its claim).
            source: Its ``defs.yaml``, for messages.

        Raises:
            CatalogError: A node another catalog defines has a different spec; the message
                names both files and what differs.
        """
        with self._lock:
            current = self._projects.get(project)
            if current is None or current.load is not load:
                current = self._projects[project] = _NodeLoad(load)
            current.nodes = {k: n for k, n in current.nodes.items() if n.owner != owner}
            defined = {**current.nodes, **self._classic}
            return self._claim(specs, defined, current.nodes, owner, source)

    def claim_for_classic(
        self, specs: Sequence[AssetSpec], *, owner: Hashable, source: str
    ) -> list[AssetSpec]:
        """The DataSet nodes a classic catalog defines: those no other classic catalog and no
        component instance of a project's latest load defines yet.

        Raises:
            CatalogError: As :meth:`claim_for_component`.
        """
        with self._lock:
            self._classic = {k: n for k, n in self._classic.items() if n.owner != owner}
            defined = dict(self._classic)
            for project in self._projects.values():
                defined.update(project.nodes)
            return self._claim(specs, defined, self._classic, owner, source)

    @staticmethod
    def _claim(
        specs: Sequence[AssetSpec],
        defined: Mapping[AssetKey, _Node],
        record: dict[AssetKey, _Node],
        owner: Hashable,
        source: str,
    ) -> list[AssetSpec]:
        mine = []
        for spec in specs:
            node = defined.get(spec.key)
            if node is None:
                record[spec.key] = _Node(spec, owner, source)
                mine.append(spec)
            elif _defining(node.spec) != _defining(spec):
                raise CatalogError(_node_conflict(spec, source, node))
        return mine


def _defining(spec: AssetSpec) -> tuple[object, ...]:
    """What two catalogs' specs of one DataSet node must agree on (``NODE_ATTRIBUTES``)."""
    return tuple(_attribute(spec, name) for name in NODE_ATTRIBUTES)


def _attribute(spec: AssetSpec, name: str) -> object:
    value = getattr(spec, name)
    if name == "metadata":
        return {k: v for k, v in value.items() if k not in DOMO_DETAIL_KEYS}
    return value


def _node_conflict(spec: AssetSpec, source: str, node: _Node) -> str:
    differing = [
        name for name in NODE_ATTRIBUTES if _attribute(spec, name) != _attribute(node.spec, name)
    ]
    return (
        f"{source}: DataSet node {spec.key.to_user_string()} is also defined by {node.source}, "
        f"with a different {', '.join(differing)} (here {_shown(spec, differing)}; there "
        f"{_shown(node.spec, differing)}). Exports of one DataSet share its node across "
        "catalogs: give them the same dataset_name and group, or key one catalog's nodes apart "
        "with a translator whose get_dataset_spec gives another key"
    )


def _shown(spec: AssetSpec, names: Sequence[str]) -> str:
    return ", ".join(f"{n}={getattr(spec, n)!r}" for n in names)


DATASET_NODES = DataSetNodes()
