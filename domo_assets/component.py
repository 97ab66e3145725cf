"""``DomoExportsComponent``: the export catalog as a ``dg`` component, configured in ``defs.yaml``.

A ``StateBackedComponent``: ``discover`` selects DataSets from Domo's own listing, which ``dg
utils refresh-defs-state`` (and ``dg dev``) reads and stores (:mod:`domo_assets.discovery`);
loading reads the stored state and makes no Domo call. With state, every export's spec carries
the DataSet's description, owner, link and column schema.

The component's ``defaults``, ``exports`` and ``sensor`` are the YAML catalog's sections: their
field names are typed models (so ``dg check yaml`` names a misspelled one, with its line), their
values validated by the catalog's code (:func:`domo_assets.catalog.parse_catalog`, messages
naming the ``defs.yaml``, the export and the field). Its ``domo`` connection is templated with
``{{ env.NAME }}``; a value written that way becomes ``EnvVar("NAME")``, read only when a run or
the sensor uses it, so no secret is stored in run config or job snapshots. ``translation`` is
Dagster's standard one, applied on top of
:class:`~domo_assets.translator.DagsterDomoTranslator`; ``post_processing`` in ``defs.yaml``
works as for any component. ``op``, ``retry_policy`` and an overridden ``execute`` shape the
export steps.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, NewType, Self

import dagster as dg
from dagster.components import DefsStateConfig, DefsStateConfigArgs, ResolvedDefsStateConfig
from dagster.components.resolved.core_models import OpSpec
from dagster.components.resolved.errors import ResolutionException
from dagster.components.utils.translation import (
    ComponentTranslator,
    TranslationFn,
    TranslationFnResolver,
    create_component_translator_cls,
)
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, create_model

from domo_assets.assets import DEFAULT_RETRY_POLICY, DOMO_POOL, ExportOp
from domo_assets.catalog import (
    Catalog,
    CatalogError,
    ExportConfig,
    ExportSettings,
    SensorSettings,
    load_catalog,
    parse_catalog,
)
from domo_assets.component_scaffolder import DomoExportsComponentScaffolder
from domo_assets.discovery import (
    DataSetSelector,
    DiscoveryState,
    HandListed,
    check_fresh,
    discovered_entries,
    missing_state_error,
    read_state,
    refresh,
    with_domo_details,
)
from domo_assets.domo.endpoints import OAUTH_CANNOT_EXPORT
from domo_assets.location import build_definitions, collector_paused
from domo_assets.ownership import DATASET_NODES, PREFIX_OWNERS
from domo_assets.resource import AwsCredentialsResource, DomoResource, S3ReaderResource
from domo_assets.translator import DagsterDomoTranslator, DomoExportProps

# The connection's identity; every other DomoResource field is a tuning setting.
CONNECTION_FIELDS = ("instance_url", "developer_token", "client_id", "client_secret", "api_url")
SECRET_FIELDS = frozenset({"developer_token", "client_secret"})
# The files a YAML component instance is declared in, in the order Dagster looks for them.
DEFS_FILE_NAMES = ("defs.yaml", "defs.yml", "component.yaml")
SCOPE_SEPARATOR = "_"

# `{{ env.NAME }}`, `{{ env('NAME') }}` or `{{ env("NAME") }}`, and nothing else in the value.
_ENV_REFERENCE = re.compile(
    r"""^\s*\{\{\s*env\s*(?:\.\s*(?P<attr>[A-Za-z_]\w*)|\(\s*(?P<q>['"])(?P<call>[A-Za-z_]\w*)(?P=q)\s*\))\s*\}\}\s*$"""
)
_TEMPLATE_MARKERS = ("{{", "{%")
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_]+")
# The state key of an instance built in Python (no defs folder): give defs_state.key instead.
DEFAULT_STATE_SCOPE = "root"
# The attributes whose JSON schema is their own model's (see _strict_sections).
STRICT_SECTIONS = ("domo", "exports", "discover", "defaults", "sensor")
# What a discovered export's catalog entry takes from Domo, not from the template.
_FROM_DOMO = ("dataset_id", "dataset_name")

logger = logging.getLogger(__name__)


# The type of the `domo` attribute: a DomoResource. Dagster's resolver checks that a pydantic
# model given as a field type has only plain fields, and DomoResource's carry bounds (ge=1);
# the NewType keeps the type for readers and pydantic while the resolver below builds it.
DomoConnection = NewType("DomoConnection", DomoResource)
# The types of the `s3` and `aws` attributes, for the same reason.
S3Settings = NewType("S3Settings", S3ReaderResource)
AwsSettings = NewType("AwsSettings", AwsCredentialsResource)


class DomoComponentError(ResolutionException, ValueError):
    """A DomoExportsComponent attribute cannot be used; the message names it and the fix.

    A ``ResolutionException`` (``dagster.components.resolved.errors``; Dagster exports no
    public name for it) because Dagster passes those through as they are, where it wraps any
    other error with the YAML lines around it, which would print a secret written out there.
    """


def _connection_model() -> type[BaseModel]:
    """The YAML schema of ``domo``: DomoResource's fields, each also accepting a template string.

    Derived from the resource so that a new setting is configurable here without being listed
    twice.
    """
    fields: dict[str, Any] = {}
    for name, info in DomoResource.model_fields.items():
        annotation = str if name in CONNECTION_FIELDS else info.annotation | str
        required = name == "instance_url"
        fields[name] = (
            annotation if required else annotation | None,
            Field(... if required else None, description=info.description),
        )
    return create_model("DomoConnectionModel", __base__=dg.Model, **fields)


DomoConnectionModel = _connection_model()


def _section_model(
    name: str,
    source: type[BaseModel],
    *,
    leave_out: tuple[str, ...] = (),
    descriptions: Mapping[str, str] | None = None,
) -> type[BaseModel]:
    """The YAML schema of a catalog section: every field of ``source``, with its description.

    Each field accepts any value: the names are checked here (an unknown one fails ``dg check
    yaml`` with its line), the values by the catalog's parser, with its messages.
    """
    fields: dict[str, Any] = {
        field: (
            Any,
            Field(default=None, description=(descriptions or {}).get(field) or info.description),
        )
        for field, info in source.model_fields.items()
        if field not in leave_out
    }
    return create_model(name, __base__=dg.Model, **fields)


def _nested_model(resource: type[dg.ConfigurableResource], name: str) -> type[BaseModel]:
    """The YAML schema of a nested resource's section (``s3``, ``aws``): the resource's fields,
    each optional and also accepting a template string (``{{ env.NAME }}``)."""
    fields: dict[str, Any] = {
        field: (info.annotation | str | None, Field(None, description=info.description))
        for field, info in resource.model_fields.items()
    }
    return create_model(name, __base__=dg.Model, **fields)


ExportModel = _section_model("DomoExportModel", ExportConfig)
DefaultsModel = _section_model("DomoDefaultsModel", ExportSettings)
SensorModel = _section_model("DomoSensorModel", SensorSettings)
ExportTemplateModel = _section_model(
    "DomoExportTemplateModel",
    ExportConfig,
    leave_out=_FROM_DOMO,
    descriptions={
        "name": "The asset name of each discovered DataSet, a pattern over {slug} (the "
        "DataSet's name in lowercase letters, digits and _), {id} and {short_id} (its id's "
        "first 8 characters); default '{slug}'.",
        "path": "The S3 prefix of each discovered DataSet, a pattern like name's; default "
        "'domo/{slug}'.",
    },
)


class DiscoverModel(dg.Model):
    """The YAML schema of ``discover``."""

    select: DataSetSelector = Field(
        description="Which DataSets of Domo's listing to export: ids, names (glob patterns), "
        "exclude_names, owners, tags."
    )
    export: ExportTemplateModel = Field(  # type: ignore[valid-type]
        default_factory=ExportTemplateModel,
        description="The export each selected DataSet becomes: any catalog key (over "
        "defaults), with name and path as patterns.",
    )


class RetryPolicyModel(dg.Model):
    """The YAML schema of ``retry_policy``: Dagster's ``RetryPolicy``."""

    max_retries: int = Field(default=1, ge=0, description="Retries of a failed export step.")
    delay: float | None = Field(default=None, ge=0, description="Seconds before a retry.")
    backoff: Literal["LINEAR", "EXPONENTIAL"] | None = Field(
        default=None, description="How the delay grows: LINEAR or EXPONENTIAL."
    )
    jitter: Literal["FULL", "PLUS_MINUS"] | None = Field(
        default=None, description="Random jitter of the delay: FULL or PLUS_MINUS."
    )


def resolve_retry_policy(
    context: dg.ResolutionContext, model: RetryPolicyModel | None
) -> dg.RetryPolicy | None:
    """``retry_policy`` as Dagster's ``RetryPolicy`` (absent: two retries 10 s apart)."""
    if model is None:
        return DEFAULT_RETRY_POLICY
    return dg.RetryPolicy(
        max_retries=model.max_retries,
        delay=model.delay,
        backoff=dg.Backoff[model.backoff] if model.backoff else None,
        jitter=dg.Jitter[model.jitter] if model.jitter else None,
    )


@dataclass(frozen=True)
class Discover:
    """A resolved ``discover`` section.

    Attributes:
        selector: Which DataSets to export.
        template: The catalog keys each selected DataSet's export takes.
    """

    selector: DataSetSelector
    template: Mapping[str, Any]


def _section(context: dg.ResolutionContext, model: BaseModel | None) -> dict[str, Any]:
    """A section model as the catalog reads it: the keys written, templates rendered."""
    if model is None:
        return {}
    return resolve_templates(context, model.model_dump(exclude_unset=True))


def resolve_exports(context: dg.ResolutionContext, models: list[BaseModel]) -> list[dict[str, Any]]:
    """The ``exports`` entries, as written (templates rendered)."""
    return [_section(context.at_path(index), model) for index, model in enumerate(models)]


def resolve_discover(context: dg.ResolutionContext, model: DiscoverModel | None) -> Discover | None:
    """The ``discover`` section: its selector, and its template as catalog keys."""
    if model is None:
        return None
    return Discover(model.select, _section(context.at_path("export"), model.export))


def _string_fields(resource: type[dg.ConfigurableResource]) -> frozenset[str]:
    """The fields of a resource that take a string: the ones an ``EnvVar`` may give."""
    return frozenset(
        name for name, info in resource.model_fields.items() if info.annotation == str | None
    )


S3SettingsModel = _nested_model(S3ReaderResource, "S3SettingsModel")
AwsSettingsModel = _nested_model(AwsCredentialsResource, "AwsSettingsModel")
_NESTED_SECRETS = frozenset({"aws_secret_access_key", "aws_session_token", "external_id"})


def _nested_resolver(
    resource: type[dg.ConfigurableResource],
) -> Callable[[dg.ResolutionContext, BaseModel], dg.ConfigurableResource]:
    """A resolver building ``resource`` from its section: ``{{ env.NAME }}`` in a string field
    becomes ``EnvVar("NAME")`` (Dagster reads it when it initializes the resource for a step),
    other templates are rendered, and a secret written out is refused."""
    strings = _string_fields(resource)

    def resolve(context: dg.ResolutionContext, model: BaseModel) -> dg.ConfigurableResource:
        settings: dict[str, Any] = {}
        for name, raw in model.model_dump(exclude_none=True).items():
            variable = _env_reference(raw) if name in strings else None
            if variable is not None:
                settings[name] = dg.EnvVar(variable)
            elif name in _NESTED_SECRETS:
                raise _connection_error(
                    context,
                    name,
                    "a secret written out in the YAML: give it from the environment, e.g. "
                    f'{name}: "{{{{ env.{name.upper()} }}}}"',
                )
            else:
                settings[name] = resolve_templates(context.at_path(name), raw)
        try:
            return resource(**settings)
        except ValidationError as exc:
            raise _connection_error(context, None, _problems(exc)) from None

    return resolve


def _env_reference(value: Any) -> str | None:
    """The variable a value names when it is exactly ``{{ env.NAME }}`` (or ``env('NAME')``)."""
    if not isinstance(value, str):
        return None
    match = _ENV_REFERENCE.match(value)
    return match and (match["attr"] or match["call"])


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and any(marker in value for marker in _TEMPLATE_MARKERS)


def resolve_templates(context: dg.ResolutionContext, value: Any) -> Any:
    """Render the template strings in a nested value and leave every other value as written.

    Dagster's default resolution renders every string as a Jinja native template, which turns
    ``"123"`` into an int and ``"[a]"`` into a list; a catalog section must mean in ``defs.yaml``
    exactly what it means in a catalog file.
    """
    if isinstance(value, Mapping):
        return {key: resolve_templates(context.at_path(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_templates(context.at_path(i), item) for i, item in enumerate(value)]
    return context.resolve_value(value) if _is_template(value) else value


def resolve_domo_connection(context: dg.ResolutionContext, model: BaseModel) -> DomoConnection:
    """The DomoResource a ``domo:`` mapping describes, secrets as ``EnvVar``.

    A value written as ``{{ env.NAME }}`` becomes ``EnvVar("NAME")`` when NAME is set (and is
    left out when it is not, so that a token or an OAuth client can be chosen by the
    environment, as ``definitions.py`` does); other templates are rendered. A secret written out
    in the YAML is refused: the file is committed, and an instance at the defs root binds the
    code location's resources, whose literal values Dagster stores in job snapshots.

    Raises:
        DomoComponentError: The URL or every credential is missing, a secret is written out, or
            a setting is invalid.
    """
    settings: dict[str, Any] = {}
    unset: dict[str, str] = {}
    for name, raw in model.model_dump(exclude_none=True).items():
        # Only the connection's strings are kept as EnvVar (read at run time); a tuning setting
        # (a number) is rendered now, like any other template.
        variable = _env_reference(raw) if name in CONNECTION_FIELDS else None
        if variable is not None:
            # Reading the variable is the component's templating: `{{ env.X }}` reads it too.
            if os.environ.get(variable):
                settings[name] = dg.EnvVar(variable)
            else:
                unset[name] = variable
        elif name in SECRET_FIELDS:
            raise _connection_error(
                context,
                name,
                "a secret written out in the YAML: give it from the environment, e.g. "
                f'{name}: "{{{{ env.DOMO_{name.upper()} }}}}" (read when a run uses it, and '
                "never stored in run config or job snapshots)",
            )
        else:
            settings[name] = resolve_templates(context.at_path(name), raw)
    _check_connection(context, settings, unset)
    return DomoConnection(_domo_resource(context, settings))


def _check_connection(
    context: dg.ResolutionContext, settings: Mapping[str, Any], unset: Mapping[str, str]
) -> None:
    """The URL and the developer token are there, or the message says what to set (OAuth
    client credentials alone cannot export)."""
    # instance_url is a required string: if it is not a setting, its variable is unset.
    if "instance_url" not in settings:
        raise _connection_error(
            context,
            "instance_url",
            f"environment variable {unset['instance_url']} is not set: export it as your Domo "
            "instance's URL (e.g. https://acme.domo.com)",
        )
    if "developer_token" in settings:
        return
    found = [
        f"{field} ({unset[field]} is not set)" if field in unset else f"{field} (not given)"
        for field in ("developer_token", "client_id", "client_secret")
    ]
    raise _connection_error(
        context,
        None,
        "no Domo developer token: give developer_token as '{{ env.DOMO_DEVELOPER_TOKEN }}' with "
        f"the variable exported ({OAUTH_CANNOT_EXPORT}); found " + ", ".join(found),
    )


def _connection_error(
    context: dg.ResolutionContext, field: str | None, problem: str
) -> DomoComponentError:
    """An error naming the file and line of ``domo`` (or of one of its fields) and the field."""
    path = [*context.path, field] if field else list(context.path)
    tree = context.source_position_tree
    position = (tree.lookup(path) or tree.position) if tree is not None else None
    where = f"{position}: " if position is not None else ""
    return DomoComponentError(f"{where}{'.'.join(str(p) for p in path)}: {problem}")


def _domo_resource(context: dg.ResolutionContext, settings: Mapping[str, Any]) -> DomoResource:
    """The resource, or an error naming what Domo's settings refuse."""
    try:
        return DomoResource(**settings)
    except ValidationError as exc:
        raise _connection_error(context, None, _problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    """What a resource's settings refuse, field by field (never the values: they may be
    secrets)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
        if error["loc"]
        else error["msg"]
        for error in exc.errors()
    )


def instance_scope(context: dg.ComponentLoadContext) -> str | None:
    """The name an instance's ops, sensor and schedules are prefixed with: its defs path.

    ``defs/my_exports/defs.yaml`` is ``my_exports``; ``defs/team-a/exports`` is
    ``team_a_exports``. None for an instance at the defs root, or outside it.
    """
    try:
        relative = context.path.relative_to(context.defs_module_path)
    except ValueError:
        return None
    scope = _NOT_A_NAME.sub(SCOPE_SEPARATOR, relative.as_posix()).strip(SCOPE_SEPARATOR)
    if not scope:
        return None
    return scope if not scope[0].isdigit() else f"{SCOPE_SEPARATOR}{scope}"


def defs_source(context: dg.ComponentLoadContext) -> str:
    """The file an instance is declared in (its folder when it is built from Python)."""
    for name in DEFS_FILE_NAMES:
        candidate = context.path / name
        if candidate.is_file():
            return str(candidate)
    return str(context.path)


@dg.scaffold_with(DomoExportsComponentScaffolder)
class DomoExportsComponent(dg.StateBackedComponent, dg.Model, dg.Resolvable):
    """Exports Domo DataSets to S3 as Dagster assets: one asset per export, with its checks.

    Materializing an asset asks Domo's asynchronous Export to S3 API to write the DataSet (or a
    query over it) as CSV into your bucket, polls until the export ends and verifies it against
    its own request (location, header, row count) before recording it. Each DataSet is an
    observable lineage node; a change sensor and the exports' cron schedules come with it.

    ``discover`` selects DataSets from Domo's listing (by ids, name patterns, owners, tags) and
    makes each an export through its template; ``dg utils refresh-defs-state`` reads the
    listing and stores it (``defs_state``), and loading makes no Domo call. ``defaults``,
    ``exports`` and ``sensor`` take exactly the keys of the YAML catalog (see the README's "The
    catalog"); a hand-listed export wins over a discovered one of the same DataSet. Several
    instances live in one project: their ops, sensor and schedules are prefixed with the
    instance's defs path (``my_exports__domo_exports``).

    Example:

        .. code-block:: yaml

            # defs.yaml
            type: domo_assets.DomoExportsComponent
            attributes:
              domo:
                instance_url: "{{ env.DOMO_INSTANCE_URL }}"
                developer_token: "{{ env.DOMO_DEVELOPER_TOKEN }}"
              defaults:
                bucket: acme-data-lake
                region: us-east-1
              discover:
                select:
                  names: ["sales*"]
                export:
                  path: domo/sales/{slug}
              exports:
                - name: pharmacy_claims
                  dataset_id: 5f0e7f4c-3b1d-4c2a-9a61-2f7d0c8e1a01
                  dataset_name: Pharmacy Claims
                  path: domo/pharmacy_claims
              translation:
                key_prefix: domo
                group_name: lake
    """

    domo: Annotated[
        DomoConnection,
        dg.Resolver(
            resolve_domo_connection,
            model_field_type=DomoConnectionModel,
            description="The Domo connection: instance_url and developer_token (required), "
            "optionally client_id and client_secret (with api_url) for the platform API's "
            "metadata and schema reads, each as '{{ env.NAME }}' for secrets; plus "
            "DomoResource's tuning settings.",
        ),
    ]
    exports: Annotated[
        list[dict[str, Any]],
        dg.Resolver(
            resolve_exports,
            model_field_type=list[ExportModel],  # type: ignore[valid-type]
            description="Exports listed by hand, each with the catalog's keys (name, "
            "dataset_id, path, ...); one wins over a discovered export of the same DataSet.",
        ),
    ] = Field(default_factory=list)
    discover: Annotated[
        Discover | None,
        dg.Resolver(
            resolve_discover,
            model_field_type=DiscoverModel | None,
            description="Exports discovered from Domo's DataSet listing: select (which "
            "DataSets) and export (the template each becomes). `dg utils refresh-defs-state` "
            "reads the listing; loading reads what it stored.",
        ),
    ] = None
    catalog: str | None = Field(
        default=None,
        description="Instead of defaults, exports and sensor here: a YAML catalog file (path "
        "relative to this defs.yaml), read with the catalog's fast loader (large catalogs: "
        "Dagster parses defs.yaml with source positions, about 0.8 ms an export).",
    )
    defaults: Annotated[
        dict[str, Any],
        dg.Resolver(
            _section,
            model_field_type=DefaultsModel | None,  # type: ignore[valid-type]
            description="Keys applied to every export, discovered ones too (bucket, region, "
            "group...); an export's own keys win.",
        ),
    ] = Field(default_factory=dict)
    sensor: Annotated[
        dict[str, Any],
        dg.Resolver(
            _section,
            model_field_type=SensorModel | None,  # type: ignore[valid-type]
            description="The DataSet change sensor: minimum_interval_seconds, datasets_per_tick, "
            "export_on_first_tick, default_status.",
        ),
    ] = Field(default_factory=dict)
    op: OpSpec | None = Field(
        default=None,
        description="The export ops: name (of the unpartitioned exports' op), tags, "
        "description, pool (default 'domo': caps concurrent export steps across runs; give "
        "each instance its own to cap them apart) and backfill_policy (partitioned exports).",
    )
    retry_policy: Annotated[
        dg.RetryPolicy | None,
        dg.Resolver(
            resolve_retry_policy,
            model_field_type=RetryPolicyModel | None,
            description="Step retries of the export ops (default: 2, 10 s apart); a retry "
            "resumes the exports it started and redoes only the failed ones.",
        ),
    ] = DEFAULT_RETRY_POLICY
    defs_state: ResolvedDefsStateConfig = Field(
        default_factory=DefsStateConfigArgs.local_filesystem,
        description="Where the DataSets read from Domo are stored: LOCAL_FILESYSTEM (refresh "
        "when the image is built), VERSIONED_STATE_STORAGE (Dagster's state storage), and "
        "whether dg dev refreshes it (refresh_if_dev).",
    )
    s3: Annotated[
        S3Settings | None,
        dg.Resolver(
            _nested_resolver(S3ReaderResource),
            model_field_type=S3SettingsModel | None,
            description="How the export steps reach S3 (S3ReaderResource's fields: region_name, "
            "endpoint_url, profile_name, keys as '{{ env.NAME }}', max_attempts); by default "
            "boto3's chain, region and AWS_ENDPOINT_URL. Nested in the Domo resource, so "
            "Dagster initializes and tears it down with it.",
        ),
    ] = None
    aws: Annotated[
        AwsSettings | None,
        dg.Resolver(
            _nested_resolver(AwsCredentialsResource),
            model_field_type=AwsSettingsModel | None,
            description="Which AWS credentials Domo is handed (AwsCredentialsResource's fields: "
            "mode, role_arn, duration_seconds, ...); by default scoped STS sessions.",
        ),
    ] = None
    translation: (
        Annotated[
            TranslationFn[DomoExportProps],
            TranslationFnResolver(template_vars_for_translation_fn=lambda props: {"props": props}),
        ]
        | None
    ) = Field(
        default=None,
        description="Asset attributes (key, key_prefix, group_name, tags, ...) applied to each "
        "export's spec; templates see `props` (config: the catalog entry, partitions_def) and "
        "`spec`.",
    )

    # Where the instance is declared (set by `load`), and what its last build read from state.
    _where: _Where | None = PrivateAttr(default=None)
    _details: _Details | None = PrivateAttr(default=None)

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> Self:
        """Load the instance and mark its state key, which names the instance's defs path.

        ``StateBackedComponent.load`` marks the key before the instance knows where it is
        declared; this does what it does (Component's load, then the mark) with that place set.
        """
        component = super(dg.StateBackedComponent, cls).load(attributes, context)
        component._where = _Where(
            source=defs_source(context),
            scope=instance_scope(context),
            project=context.defs_module_name.partition(".")[0],
        )
        context.component_tree.mark_component_defs_state_key(
            defs_state_key=component.defs_state_config.key, loc=context.component_loc
        )
        return component

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        """The YAML model, whose JSON schema (``dg check yaml``, editors) holds each section's
        own schema rather than "this schema or any string"."""
        return _strict_sections(super().get_model_cls())

    @property
    def defs_state_config(self) -> DefsStateConfig:
        """The state's storage; its key names the project and the instance
        (``DomoExportsComponent[<project>:<defs path>]``), unique in a deployment whose code
        locations share Dagster's state storage."""
        where = self._where
        scope = where.scope if where and where.scope else DEFAULT_STATE_SCOPE
        name = f"{where.project}:{scope}" if where else scope
        return DefsStateConfig.from_args(
            self.defs_state, default_key=f"{type(self).__name__}[{name}]"
        )

    @classmethod
    def get_spec(cls) -> dg.ComponentTypeSpec:
        """What ``dg list components`` and the UI show of this component type."""
        return dg.ComponentTypeSpec(
            tags=["domo", "s3"],
            produces=["asset", "asset_check", "sensor", "schedule"],
        )

    @cached_property
    def translator(self) -> DagsterDomoTranslator:
        """The translator the specs come from: this component's, with ``translation`` on top."""
        return DomoComponentTranslator(self)

    @cached_property
    def _base_translator(self) -> DagsterDomoTranslator:
        return DagsterDomoTranslator()

    def get_asset_spec(self, props: DomoExportProps) -> dg.AssetSpec:
        """The spec of one export asset, before ``translation``.

        Override it in a subclass to change every export's spec in Python; by default it is
        ``DagsterDomoTranslator().get_asset_spec(props)``. Once DataSets are stored (``dg
        utils refresh-defs-state``), Domo's description, owner, link and column schema are put
        on what it returns (``with_domo_details``), then ``translation`` applies.

        Args:
            props: The export's catalog entry and partitions.
        """
        return self._base_translator.get_asset_spec(props)

    def get_dataset_spec(self, config: ExportConfig) -> dg.AssetSpec:
        """The spec of the lineage node of an export's DataSet (``translation`` does not apply;
        Domo's description, link and column schema are put on it as on ``get_asset_spec``'s).

        Args:
            config: A catalog entry of that DataSet.
        """
        return self._base_translator.get_dataset_spec(config)

    def with_domo_details(
        self, spec: dg.AssetSpec, config: ExportConfig, *, export: bool
    ) -> dg.AssetSpec:
        """``spec`` with what the stored state says of its DataSet (unchanged without state).

        Args:
            spec: An export's spec (``export``) or its DataSet node's.
            config: The export's catalog entry.
            export: Whether ``spec`` is the export's (its ``columns`` narrow the schema).

        Raises:
            DiscoveryError: The entry's ``columns`` name a column the DataSet does not have.
        """
        details = self._details
        if details is None:
            return spec
        dataset = details.state.by_id.get(config.dataset_id)
        if dataset is None:  # check_fresh refused a state without a hand-listed DataSet
            return spec
        return with_domo_details(
            spec,
            dataset,
            details.state.instance_url,
            config if export else None,
            details.labels.get(config.name, config.name),
        )

    def execute(
        self, context: dg.AssetExecutionContext, domo: DomoResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """The export steps' body: export the step's selected assets and yield their results.

        Override it in a subclass to do something around the exports, e.g.::

            class LoggedExports(DomoExportsComponent):
                def execute(self, context, domo):
                    context.log.info("exporting %d assets", len(context.selected_asset_keys))
                    yield from super().execute(context, domo)

        Args:
            context: The step's context.
            domo: The Domo resource.
        """
        yield from domo.export_and_poll(context)

    def export_op(self, source: str) -> ExportOp:
        """How the export ops run, from ``op`` and ``retry_policy``.

        Args:
            source: Where the instance is declared, for messages.

        Raises:
            DomoComponentError: ``op.backfill_policy`` would hand a run several partitions.
        """
        op = self.op or OpSpec()
        if op.backfill_policy is not None and op.backfill_policy != dg.BackfillPolicy.multi_run(1):
            raise DomoComponentError(
                f"{source}: op.backfill_policy: a partitioned export's run exports one partition "
                "(one Domo export per partition, and Domo runs one export of a DataSet at a "
                "time): give {type: multi_run, max_partitions_per_run: 1} or leave it out"
            )
        return ExportOp(
            name=op.name,
            tags=op.tags,
            description=op.description,
            pool=op.pool or DOMO_POOL,
            retry_policy=self.retry_policy,
        )

    def hand_listed(self, source: str) -> Catalog:
        """The exports listed by hand (inline or in ``catalog``), validated.

        Args:
            source: Where the instance is declared, for messages (its ``defs.yaml``).

        Raises:
            CatalogError: An export, default or sensor setting is invalid.
        """
        if self.catalog is not None:
            if self.exports or self.defaults or self.sensor:
                raise CatalogError(
                    f"{source}: give the exports either inline (defaults, exports, sensor) or "
                    f"in the catalog file {self.catalog!r}, not both"
                )
            folder = Path(source) if Path(source).is_dir() else Path(source).parent
            return load_catalog(folder / self.catalog)
        document = {"defaults": self.defaults, "exports": self.exports, "sensor": self.sensor}
        return parse_catalog(document, source=source)

    def build_catalog(self, source: str, state: DiscoveryState | None = None) -> Catalog:
        """The validated catalog: the hand-listed exports, then the discovered ones.

        Args:
            source: Where the instance is declared, for messages (its ``defs.yaml``).
            state: The stored DataSets (required with ``discover``).

        Raises:
            CatalogError: An export, default or sensor setting is invalid, or two exports
                share a name or a prefix; the message names the file, the export and the field.
            DiscoveryError: ``discover`` without state, or with stale state.
        """
        hand = self.hand_listed(source)
        listed = _hand_listed(hand)
        if state is not None:
            check_fresh(state, self.discover and self.discover.selector, listed, source)
        if self.discover is None:
            return hand
        if state is None:
            raise missing_state_error(source, self.defs_state_config.key)
        entries = discovered_entries(
            state, self.discover.template, [h.dataset_id for h in listed], source
        )
        document = {"defaults": self.defaults, "exports": entries}
        found = parse_catalog(document, source=f"{source}: discover", included=(hand,))
        return found.model_copy(update={"source": source, "sensor": hand.sensor})

    def write_state_to_path(self, state_path: Path) -> None:
        """Read from Domo the DataSets this instance needs and store them at ``state_path``.

        Called by ``dg utils refresh-defs-state`` (and by ``dg dev`` unless
        ``defs_state.refresh_if_dev`` is false), never when the code location loads.

        Raises:
            DiscoveryError: The selector selects nothing, or a hand-listed export's DataSet
                cannot be read (the message names the export).
            DomoError: Domo refused or failed a read.
        """
        source = self._where.source if self._where else type(self).__name__
        listed = _hand_listed(self.hand_listed(source))
        # Dagster initializes the resource (reading its EnvVars) for this refresh alone, and
        # tears it down after: a new client each time, so a refresh (e.g. dg dev reloading in
        # one process) reads what Domo says now, not schemas an earlier one cached.
        with dg.build_resources({"domo": self.domo_resource}) as resources:
            client = resources.domo.get_client(log=logger)
            state = refresh(client, self.discover and self.discover.selector, listed, source)
        state_path.write_text(state.to_json(), encoding="utf-8")

    def build_defs_from_state(
        self, context: dg.ComponentLoadContext, state_path: Path | None
    ) -> dg.Definitions:
        """The exports' assets and checks, their DataSets' nodes, the sensor and the schedules,
        from the instance's YAML and the stored DataSets (no Domo call).

        Raises:
            CatalogError: The catalog is invalid, or one of its prefixes equals or nests in
                another instance's of the project (or a classic catalog's in this process).
            DiscoveryError: ``discover`` and no stored state, or state stored for another
                selector or without a hand-listed export's DataSet.
        """
        source = defs_source(context)
        with collector_paused():
            state = read_state(state_path, source) if state_path is not None else None
            catalog = self.build_catalog(source, state)
            # Every instance of the project builds in this load: the last one built of two
            # that overlap fails the load, naming both (domo_assets.ownership).
            project = context.project_root.resolve()
            PREFIX_OWNERS.claim_for_component(
                catalog, project=project, load=context.component_tree, owner=context.component_loc
            )
            if state is not None:
                labels = {
                    export.name: origin.label
                    for export, origin in zip(catalog.exports, catalog.origins, strict=True)
                }
                self._details = _Details(state, labels)
            scope = instance_scope(context)
            return build_definitions(
                catalog,
                self.domo_resource,
                translator=self.translator,
                scope=scope,
                op=self.export_op(source),
                execute=self.execute,
                # A DataSet another instance (or a classic catalog) exports too has one node,
                # defined by the first of them built.
                claim_nodes=lambda specs: DATASET_NODES.claim_for_component(
                    specs.datasets,
                    project=project,
                    load=context.component_tree,
                    owner=context.component_loc,
                    source=source,
                ),
            )

    @property
    def domo_resource(self) -> DomoResource:
        """The instance's Domo resource with its ``s3`` and ``aws`` sections nested in it."""
        return self.domo.with_nested(s3=self.s3, aws_credentials=self.aws)


def _strict_sections(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with a JSON schema that gives each section (``STRICT_SECTIONS``) its own schema.

    Dagster lets every attribute be a template string (``X | str``), so the JSON schema offers
    each section as "X, or any string", and a misspelled key inside it is reported as "not
    valid under any of the given schemas", without its name. A section is written out in
    ``defs.yaml`` (a template string stands for a value, inside it), so its schema is X alone:
    ``dg check yaml`` then names the unknown key, at its line.
    """

    def model_json_schema(cls: type[BaseModel], *args: Any, **kwargs: Any) -> dict[str, Any]:
        schema = model.model_json_schema.__func__(cls, *args, **kwargs)  # type: ignore[attr-defined]
        for name in STRICT_SECTIONS:
            prop = schema.get("properties", {}).get(name)
            if not prop or "anyOf" not in prop:
                continue
            kept = [b for b in prop["anyOf"] if b.get("type") not in ("string", "null")]
            if len(kept) == 1:
                del prop["anyOf"]
                prop.update(kept[0])
        return schema

    # Named as Dagster named the model: validation messages name it.
    return type(model.__name__, (model,), {"model_json_schema": classmethod(model_json_schema)})


@dataclass(frozen=True)
class _Where:
    """Where an instance is declared: its ``defs.yaml``, its scope (None at the defs root) and
    its project's root module."""

    source: str
    scope: str | None
    project: str


@dataclass(frozen=True)
class _Details:
    """What a build read from state: the DataSets, and each export's label for messages."""

    state: DiscoveryState
    labels: Mapping[str, str]


def _hand_listed(catalog: Catalog) -> list[HandListed]:
    """The DataSets of a catalog's exports, each named by its first export."""
    seen: dict[str, HandListed] = {}
    for export, origin in zip(catalog.exports, catalog.origins, strict=True):
        seen.setdefault(export.dataset_id, HandListed(export.dataset_id, origin.label))
    return list(seen.values())


class DomoComponentTranslator(
    create_component_translator_cls(DomoExportsComponent, DagsterDomoTranslator),
    ComponentTranslator[DomoExportsComponent],
):
    """The component's translator: its ``get_asset_spec`` (overridable), then ``translation``."""

    def get_asset_spec(self, props: DomoExportProps) -> dg.AssetSpec:
        """The export's spec with Domo's details, then the component's ``translation``."""
        spec = self.component.with_domo_details(
            super().get_asset_spec(props), props.config, export=True
        )
        translation = self.component.translation
        return spec if translation is None else translation(spec, props)

    def get_dataset_spec(self, config: ExportConfig) -> dg.AssetSpec:
        """The DataSet node's spec, from the component (so a subclass can override it), with
        Domo's details."""
        spec = self.component.get_dataset_spec(config)
        return self.component.with_domo_details(spec, config, export=False)
