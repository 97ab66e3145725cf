"""Whose request an export answers: this asset's, or another's that Domo handed back.

Domo documents that while a DataSet is unchanged, an export request returns "the previous
export" instead of a new one, and says nothing of which request that export was made for: it
may lie under another asset's prefix and hold other columns or other rows. Before an export is
recorded as an asset's data, :func:`settle` decides:

* its objects lie under this asset's ``<path>/<exportId>/`` and this run started it, or, if
  Domo returned it as a previous export, its manifest names this asset's request (fingerprint),
  or (no manifest: its run died before writing one) this asset's ledger shows it started that
  export for this very request: it is this asset's. A previous export under the asset's own
  prefix that nothing shows to answer this request (the catalog entry changed since, in a way
  neither the header nor the row count can see, such as ``order_by``) is refused;
* it lies elsewhere, but the ``_manifest.json`` this project wrote beside it (only ever for a
  verified export) records the same DataSet, query and BOM setting: its objects are copied
  server-side under this asset's ``<path>/<exportId>/export/``, each keeping its key relative to
  the source's ``<exportId>/export/`` folder, and the copies are recorded (an object outside
  such a folder is refused rather than placed by guess);
* otherwise it is refused with :class:`DomoForeignExportError`, and its files are not recorded.

Plain Python over a boto3 S3 client (the worker's own credentials, never the ones handed to
Domo): no Dagster, no Domo HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domo_assets.domo.errors import DomoForeignExportError
from domo_assets.domo.models import Export, S3Object
from domo_assets.s3.manifest import ExportManifest, read_manifest
from domo_assets.s3.storage import copy_object
from domo_assets.s3.target import EXPORT_FOLDER, ExportTarget, export_folder, folders_of


@dataclass(frozen=True)
class Provenance:
    """The files an export contributes to an asset.

    Attributes:
        objects: The files recorded as the asset's: the export's own, or copies of them.
        copied_from: The source URIs, when the files are copies.
    """

    objects: tuple[S3Object, ...]
    copied_from: tuple[str, ...] = ()


def settle(
    s3_client: Any,
    target: ExportTarget,
    export: Export,
    *,
    returned_previous: bool,
    export_name: str,
    started_for: str | None = None,
    kms_key_id: str | None = None,
) -> Provenance:
    """Decide which files an export contributes to the asset requesting ``target``.

    Args:
        s3_client: A boto3 S3 client with the worker's credentials.
        target: The asset's request.
        export: The successful export Domo answered with.
        returned_previous: Domo answered with an export that existed before the request.
        export_name: The asset's name, for messages.
        started_for: The request fingerprint this asset's ledger recorded when it started this
            export, if it did.
        kms_key_id: The KMS key copies are encrypted with, as the export's own files would be.

    Raises:
        DomoForeignExportError: The export was made for another request and cannot be adopted.
    """
    foreign = target.foreign_objects(export)
    if not foreign and not returned_previous:
        return Provenance(export.objects)
    manifest = _manifest_of(s3_client, export)
    if not foreign:
        if manifest is not None and manifest.request == target.fingerprint:
            return Provenance(export.objects)
        if manifest is None and started_for == target.fingerprint:
            return Provenance(export.objects)
        raise _refusal(target, export, export_name, manifest, own_prefix=True)
    if manifest is None or not manifest.answers(target):
        raise _refusal(target, export, export_name, manifest)
    # Every destination first: nothing is copied unless every object has its place.
    keys = _own_keys(target, export, export_name)
    copies = tuple(
        copy_object(s3_client, obj, target.bucket, key, kms_key_id)
        for obj, key in zip(export.objects, keys, strict=True)
    )
    return Provenance(copies, tuple(obj.uri for obj in export.objects))


def _own_keys(target: ExportTarget, export: Export, export_name: str) -> tuple[str, ...]:
    """Where each object's copy goes (``ExportTarget.own_key``).

    Raises:
        DomoForeignExportError: An object lies outside an ``<exportId>/export/`` folder.
    """
    keys = []
    for obj in export.objects:
        try:
            keys.append(target.own_key(export.export_id, obj.key))
        except ValueError:
            raise DomoForeignExportError(
                f"Domo answered {export_name}'s export request with export {export.export_id} "
                f"of the same query, written under another prefix, but its object {obj.uri} "
                f"does not lie under an {export.export_id}/{EXPORT_FOLDER}/ folder, where Domo "
                "writes an export's files: where its copy belongs under "
                f"{target.prefix_uri}{export.export_id}/{EXPORT_FOLDER}/ cannot be told, so "
                "nothing was copied",
                hint=(
                    "Materialize again after the DataSet next changes (Domo then writes a new "
                    "export under this asset's own prefix), and report the export's layout"
                ),
            ) from None
    return tuple(keys)


def _manifest_of(s3_client: Any, export: Export) -> ExportManifest | None:
    """The manifest in the export's ``<exportId>/export/`` folder, if this project wrote one."""
    if not export.objects:
        return None
    first = export.objects[0]
    stored = read_manifest(s3_client, first.bucket, export_folder(export.export_id, first.key))
    return stored.manifest if stored is not None else None


def _refusal(
    target: ExportTarget,
    export: Export,
    export_name: str,
    manifest: ExportManifest | None,
    own_prefix: bool = False,
) -> DomoForeignExportError:
    where = ", ".join(folders_of(export.objects)) or "nowhere (it lists no file)"
    if manifest is None and own_prefix:
        why = (
            "and neither a manifest beside it (its run was stopped or its checks failed before "
            "one was written) nor this asset's ledger shows it was made for this request "
            f"({target.fingerprint}): the catalog entry may have changed since"
        )
    elif manifest is None:
        why = "and no manifest of this project beside it says which request it answers"
    else:
        why = (
            f"and its manifest records another request ({manifest.request}: another query, "
            "order or BOM setting)"
        )
    started = export.started.isoformat() if export.started else "an unknown time"
    return DomoForeignExportError(
        f"Domo answered {export_name}'s export request with export {export.export_id}, "
        f"written to {where} (this asset's exports belong under {target.prefix_uri}), {why}. "
        f"Domo returned it because DataSet {target.dataset_id} is unchanged since that export "
        f"(started {started}). Its files were not recorded as {export_name}'s"
    )
