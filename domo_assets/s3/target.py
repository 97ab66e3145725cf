"""What one asset asks Domo for, resolved at run time: the request an export must answer.

An :class:`ExportTarget` is built from a catalog entry, a partition and the DataSet's columns. It
names where the export must lie (``s3://<bucket>/<path>/<exportId>/``), which columns its files
must hold, in order, and whether they start with a BOM; its ``fingerprint`` identifies the
request in the export ledger, and its ``query_document`` is what ``_manifest.json`` records, so
a manifest written for one asset can be compared with another asset's request.

Domo returns "the previous export" when a DataSet is unchanged, without saying which request
that export was made for: everything that decides whether an export is this asset's own is here.
Plain Python: no Dagster, no HTTP, no S3 calls.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domo_assets.domo.models import Export, ExportQuery, S3Object

# Domo writes <path>/<exportId>/export/<file>; copies of another request's export go there too.
EXPORT_FOLDER = "export"
FINGERPRINT_LENGTH = 16
# IAM reads these in a resource ARN as wildcards (* ?) or policy variables (${...}): a prefix
# holding one would widen the session policy Domo is handed beyond the export's own prefix.
IAM_PATTERN_CHARACTERS = frozenset("*?${}")
# Unicode's category of control characters (tab, newline, DEL...), refused in a prefix.
CONTROL_CATEGORY = "Cc"


def prefix_uri(bucket: str, path: str) -> str:
    """``s3://<bucket>/<path>/``: where exports to ``path`` land, before Domo adds
    ``<exportId>/export/``."""
    return f"s3://{bucket}/{path}/"


def check_prefix_text(value: str, field: str) -> None:
    """Refuse text that would widen the IAM resource a prefix is scoped to.

    Raises:
        ValueError: ``value`` holds an IAM wildcard or policy-variable character, or a control
            character; the message names the field and the character.
    """
    for char in value:
        if char in IAM_PATTERN_CHARACTERS:
            raise ValueError(
                f"{field} {value!r} contains {char!r}, which IAM reads as a wildcard or a policy "
                "variable (* ? ${...}): the credentials handed to Domo would reach other "
                "prefixes. Remove it from the prefix"
            )
        if unicodedata.category(char) == CONTROL_CATEGORY:
            raise ValueError(
                f"{field} {value!r} contains the control character {char!r}: remove it"
            )


def check_prefix_path(path: str, field: str = "path") -> None:
    """Refuse an S3 prefix (``a/b/c``, no leading or trailing ``/``) that would not name exactly
    the keys under it: IAM pattern or control characters, an empty segment (``a//b``), or a ``.``
    or ``..`` segment (which some HTTP clients resolve, writing elsewhere than the policy, the
    ownership check and the checks assume).

    Raises:
        ValueError: The message names the field and what to change.
    """
    check_prefix_text(path, field)
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            shown = "an empty segment (//)" if not segment else f"a {segment!r} segment"
            raise ValueError(
                f"{field} {path!r} has {shown}: S3 keeps it literally but clients may not, "
                "so the files could land outside the prefix; use plain names between the /"
            )


@dataclass(frozen=True)
class ExportTarget:
    """One asset's request, with the DataSet's columns resolved.

    Attributes:
        dataset_id: The Domo DataSet.
        bucket: The destination bucket.
        path: The S3 prefix, the partition segment included.
        query: Columns (empty: all), grouping, order and filter.
        columns: The columns the files must hold, in order (``query.columns`` or all of the
            DataSet's).
        include_bom: Whether the files must start with a UTF-8 BOM.
        partition_key: The partition, for a partitioned asset.
    """

    dataset_id: str
    bucket: str
    path: str
    query: ExportQuery
    columns: tuple[str, ...]
    include_bom: bool = False
    partition_key: str | None = None

    @property
    def query_document(self) -> dict[str, Any]:
        """The query as Domo's ``queryRequest.query`` (and the manifest) spell it."""
        return self.query.to_domo(self.columns)

    @property
    def fingerprint(self) -> str:
        """A short digest of everything that decides an export's content and place."""
        canonical = json.dumps(
            {
                "dataset_id": self.dataset_id,
                "bucket": self.bucket,
                "path": self.path,
                "query": self.query_document,
                "include_bom": self.include_bom,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]

    @property
    def prefix_uri(self) -> str:
        """``s3://<bucket>/<path>/``: where this asset's exports lie."""
        return prefix_uri(self.bucket, self.path)

    def folder(self, export_id: str) -> str:
        """The key prefix of one export of this asset: ``<path>/<exportId>/``."""
        return f"{self.path}/{export_id}/"

    def own_key(self, export_id: str, source_key: str) -> str:
        """Where a copy of another request's object goes: ``<path>/<exportId>/export/<relative
        key>``, its key relative to the source export's ``<exportId>/export/`` folder (nested
        keys such as ``a/part-0.csv`` and ``b/part-0.csv`` stay apart).

        Raises:
            ValueError: The source key does not lie under an ``<exportId>/export/`` folder of
                this export: where its copy belongs cannot be told.
        """
        relative = relative_key(export_id, source_key)
        if relative is None:
            raise ValueError(
                f"{source_key} does not lie under a {export_id}/{EXPORT_FOLDER}/ folder"
            )
        return f"{self.folder(export_id)}{EXPORT_FOLDER}/{relative}"

    def foreign_objects(self, export: Export) -> tuple[S3Object, ...]:
        """The export's objects that lie outside this asset's ``<path>/<exportId>/``."""
        folder = self.folder(export.export_id)
        return tuple(
            obj
            for obj in export.objects
            if obj.bucket != self.bucket or not obj.key.startswith(folder)
        )

    def answered_by(self, dataset_id: Any, query: Any, include_bom: Any) -> bool:
        """Whether a request described by a manifest is this one (place aside)."""
        return (
            dataset_id == self.dataset_id
            and _canonical(query) == _canonical(self.query_document)
            and include_bom == self.include_bom
        )


def relative_key(export_id: str, key: str) -> str | None:
    """An object's key relative to its export's folder (``<...>/<exportId>/export/``, where
    Domo writes an export's files), or None when the key does not lie under such a folder."""
    marker = f"{export_id}/{EXPORT_FOLDER}/"
    if key.startswith(marker):
        start = len(marker)
    else:
        found = key.find(f"/{marker}")
        if found < 0:
            return None
        start = found + 1 + len(marker)
    return key[start:] or None


def export_folder(export_id: str, key: str) -> str:
    """The folder of an export that holds one of its objects, where ``_manifest.json`` goes:
    ``<...>/<exportId>/export`` for Domo's layout (a nested key's too), else the object's own
    folder (files Domo wrote without an ``export/`` folder)."""
    relative = relative_key(export_id, key)
    if relative is None:
        return posixpath.dirname(key)
    return key[: -len(relative) - 1]


def folders_of(objects: Iterable[S3Object]) -> tuple[str, ...]:
    """The distinct ``s3://bucket/folder/`` URIs of some objects, in order."""
    seen = dict.fromkeys(f"s3://{o.bucket}/{o.key.rsplit('/', 1)[0]}/" for o in objects)
    return tuple(seen)


def _canonical(document: Any) -> str:
    """A JSON text that compares equal for equal documents, whatever their key order."""
    return json.dumps(_plain(document), sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value
