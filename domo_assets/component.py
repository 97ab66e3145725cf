"""``DomoExportsComponent``: the export catalog as a ``dg`` component, configured in ``defs.yaml``.

The component's ``defaults``, ``exports`` and ``sensor`` are the YAML catalog's sections, validated
by the same code (:func:`domo_assets.catalog.parse_catalog`, messages naming the ``defs.yaml``,
the export and the field). Its ``domo`` connection is templated with ``{{ env.NAME }}``; a value
written that way becomes ``EnvVar("NAME")``, read only when a run or the sensor uses it, so no
secret is stored in run config or job snapshots. ``translation`` is Dagster's standard one, applied
on top of
:class:`~domo_assets.translator.DagsterDomoTranslator`; ``post_processing`` in ``defs.yaml``
works as for any component.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, NewType

import dagster as dg
from dagster.components.resolved.errors import ResolutionException
from dagster.components.utils.translation import (
    ComponentTranslator,
    TranslationFn,
    TranslationFnResolver,
    create_component_translator_cls,
)
from pydantic import BaseModel, Field, ValidationError, create_model

from domo_assets.catalog import Catalog, CatalogError, ExportConfig, load_catalog, parse_catalog
from domo_assets.component_scaffolder import DomoExportsComponentScaffolder
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


def _nested_model(resource: type[dg.ConfigurableResource], name: str) -> type[BaseModel]:
    """The YAML schema of a nested resource's section (``s3``, ``aws``): the resource's fields,
    each optional and also accepting a template string (``{{ env.NAME }}``)."""
    fields: dict[str, Any] = {
        field: (info.annotation | str | None, Field(None, description=info.description))
        for field, info in resource.model_fields.items()
    }
    return create_model(name, __base__=dg.Model, **fields)


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
class DomoExportsComponent(dg.Component, dg.Model, dg.Resolvable):
    """Exports Domo DataSets to S3 as Dagster assets: one asset per export, with its checks.

    Materializing an asset asks Domo's asynchronous Export to S3 API to write the DataSet (or a
    query over it) as CSV into your bucket, polls until the export ends and verifies it against
    its own request (location, header, row count) before recording it. Each DataSet is an
    observable lineage node; a change sensor and the exports' cron schedules come with it.

    ``defaults``, ``exports`` and ``sensor`` take exactly the keys of the YAML catalog (see the
    README's "The catalog"). Several instances live in one project: their ops, sensor and
    schedules are prefixed with the instance's defs path (``my_exports__domo_exports``).

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
            resolve_templates,
            model_field_type=list[dict[str, Any]],
            description="The exports, each with the catalog's keys (name, dataset_id, path, ...).",
        ),
    ] = Field(default_factory=list)
    catalog: str | None = Field(
        default=None,
        description="Instead of defaults, exports and sensor here: a YAML catalog file (path "
        "relative to this defs.yaml), read with the catalog's fast loader (large catalogs: "
        "Dagster parses defs.yaml with source positions, about 0.8 ms an export).",
    )
    defaults: Annotated[
        dict[str, Any],
        dg.Resolver(
            resolve_templates,
            model_field_type=dict[str, Any],
            description="Keys applied to every export (bucket, region, group...); an export's "
            "own keys win.",
        ),
    ] = Field(default_factory=dict)
    sensor: Annotated[
        dict[str, Any],
        dg.Resolver(
            resolve_templates,
            model_field_type=dict[str, Any],
            description="The DataSet change sensor: minimum_interval_seconds, datasets_per_tick, "
            "export_on_first_tick, default_status.",
        ),
    ] = Field(default_factory=dict)
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
        ``DagsterDomoTranslator().get_asset_spec(props)``.

        Args:
            props: The export's catalog entry and partitions.
        """
        return self._base_translator.get_asset_spec(props)

    def get_dataset_spec(self, config: ExportConfig) -> dg.AssetSpec:
        """The spec of the lineage node of an export's DataSet (``translation`` does not apply).

        Args:
            config: A catalog entry of that DataSet.
        """
        return self._base_translator.get_dataset_spec(config)

    def build_catalog(self, source: str) -> Catalog:
        """The validated catalog of this instance's ``defaults``, ``exports`` and ``sensor``.

        Args:
            source: Where the instance is declared, for messages (its ``defs.yaml``).

        Raises:
            CatalogError: An export, default or sensor setting is invalid; the message names
                the file, the export and the field.
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

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The exports' assets and checks, their DataSets' nodes, the sensor and the schedules.

        Raises:
            CatalogError: The catalog is invalid, or one of its prefixes equals or nests in
                another instance's of the project (or a classic catalog's in this process).
        """
        with collector_paused():
            catalog = self.build_catalog(defs_source(context))
            # Every instance of the project builds in this load: the last one built of two
            # that overlap fails the load, naming both (domo_assets.ownership).
            project = context.project_root.resolve()
            PREFIX_OWNERS.claim_for_component(
                catalog, project=project, load=context.component_tree, owner=context.component_loc
            )
            return build_definitions(
                catalog,
                self.domo_resource,
                translator=self.translator,
                scope=instance_scope(context),
                # A DataSet another instance (or a classic catalog) exports too has one node,
                # defined by the first of them built.
                claim_nodes=lambda specs: DATASET_NODES.claim_for_component(
                    specs.datasets,
                    project=project,
                    load=context.component_tree,
                    owner=context.component_loc,
                    source=defs_source(context),
                ),
            )

    @property
    def domo_resource(self) -> DomoResource:
        """The instance's Domo resource with its ``s3`` and ``aws`` sections nested in it."""
        return self.domo.with_nested(s3=self.s3, aws_credentials=self.aws)


class DomoComponentTranslator(
    create_component_translator_cls(DomoExportsComponent, DagsterDomoTranslator),
    ComponentTranslator[DomoExportsComponent],
):
    """The component's translator: its ``get_asset_spec`` (overridable), then ``translation``."""

    def get_asset_spec(self, props: DomoExportProps) -> dg.AssetSpec:
        """The export's spec with the component's ``translation`` applied."""
        spec = super().get_asset_spec(props)
        translation = self.component.translation
        return spec if translation is None else translation(spec, props)

    def get_dataset_spec(self, config: ExportConfig) -> dg.AssetSpec:
        """The DataSet node's spec, from the component (so a subclass can override it)."""
        return self.component.get_dataset_spec(config)
