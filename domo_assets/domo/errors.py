"""Exceptions raised by the Domo client: one type per meaning, each saying what to do.

Every message carries Domo's own ``message`` and ``toe`` (the id Domo support asks for) when
Domo sent them. Messages never contain a secret: the client builds them from the request's
method and path, never from headers or bodies it sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from domo_assets.domo.models import Export


@dataclass(frozen=True)
class DomoErrorDetail:
    """What Domo said about a failed request."""

    method: str
    path: str
    status: int | None = None
    status_reason: str | None = None
    message: str | None = None
    toe: str | None = None
    retry_after: float | None = None

    def describe(self) -> str:
        """One line naming the request and Domo's answer."""
        parts = [f"{self.method} {self.path}"]
        if self.status is not None:
            parts.append(
                f"-> HTTP {self.status}" + (f" {self.status_reason}" if self.status_reason else "")
            )
        if self.message:
            parts.append(f"Domo says: {self.message!r}")
        if self.toe:
            parts.append(f"(toe {self.toe}: quote it to Domo support)")
        return " ".join(parts)


class DomoError(Exception):
    """Base class of every error this package raises about Domo.

    ``permanent`` says whether trying again cannot help (access, configuration, a request Domo
    rejects, an export made for another request, a wait already spent): such failures do not
    trigger Dagster step retries.
    """

    hint = ""
    permanent = False

    def __init__(
        self, summary: str, detail: DomoErrorDetail | None = None, hint: str | None = None
    ):
        self.summary = summary
        self.detail = detail
        if hint is not None:
            self.hint = hint
        text = summary
        if detail is not None:
            text += f": {detail.describe()}"
        if self.hint:
            text += f". {self.hint}"
        super().__init__(text)

    @property
    def status(self) -> int | None:
        """Domo's HTTP status, if it answered."""
        return self.detail.status if self.detail else None

    @property
    def toe(self) -> str | None:
        """Domo's ``toe`` (thread of execution id), if it sent one."""
        return self.detail.toe if self.detail else None


class DomoResponseError(DomoError):
    """Domo answered with a body this package cannot read."""

    hint = "This is unexpected Domo behaviour: report it with the response shown"


class DomoInvalidRequestError(DomoError):
    """HTTP 400: Domo rejected the request."""

    permanent = True
    hint = "Check the export's bucket, region, columns and filter against the DataSet"


class DomoExportInProgressError(DomoInvalidRequestError):
    """Domo refused a new export because the DataSet already has one running."""

    # Another export running is a wait, not a mistake: a retry may find it ended.
    permanent = False
    hint = "Domo allows one active export per DataSet: wait for it to finish, or attach to it"

    def __init__(
        self,
        summary: str,
        detail: DomoErrorDetail | None,
        active_export_id: str,
        active_export: Export | None = None,
    ):
        self.active_export_id = active_export_id
        # The running export as the client just listed it, so callers need not list again.
        self.active_export = active_export
        super().__init__(summary, detail)


class DomoAuthenticationError(DomoError):
    """HTTP 401: the token is missing, invalid or expired."""

    permanent = True
    hint = (
        "Set DOMO_DEVELOPER_TOKEN to a valid developer token for this instance "
        "(Admin > Authentication > Access tokens), or check DOMO_CLIENT_ID/DOMO_CLIENT_SECRET"
    )


class DomoPermissionError(DomoError):
    """HTTP 403: the token's user may not read the DataSet."""

    permanent = True
    hint = "Ask the DataSet's owner to share it with the token's user (READ or dataset.admin)"


class DomoNotFoundError(DomoError):
    """HTTP 404: no such DataSet (or endpoint) on this instance."""

    permanent = True
    hint = "Check the dataset_id in the catalog and DOMO_INSTANCE_URL"


class DomoRateLimitError(DomoError):
    """HTTP 429 persisted after every retry."""

    hint = "Domo is rate limiting this token: lower the concurrency cap or poll less often"


class DomoServerError(DomoError):
    """HTTP 5xx persisted after every retry."""

    hint = "Domo had a server error: retry later and quote the toe to Domo support if it persists"


class DomoTimeoutError(DomoError):
    """Domo did not answer in time, or the connection failed, after every retry."""

    hint = "Check DOMO_INSTANCE_URL and the network, or raise the request timeout"


class DomoExportFailedError(DomoError):
    """The export ended without success: status ``error``, or a status Domo does not document."""

    hint = "Fix the cause Domo names, then materialize again"

    def __init__(
        self,
        summary: str,
        detail: DomoErrorDetail | None = None,
        hint: str | None = None,
        *,
        export: Export | None = None,
    ):
        # The failed export as Domo reported it (status, errorCode, message), when known.
        self.export = export
        super().__init__(summary, detail, hint)


class DomoExportTimeoutError(DomoError):
    """The export did not finish within the poll timeout."""

    permanent = True
    hint = (
        "The export may still finish in Domo: materialize again to attach to it, "
        "or raise poll_timeout_seconds"
    )


class DomoExportStoppedError(DomoError):
    """Polling stopped because the run was terminated."""

    hint = "The export keeps running in Domo: materialize again to attach to it"


STATUS_ERRORS: dict[int, type[DomoError]] = {
    400: DomoInvalidRequestError,
    401: DomoAuthenticationError,
    403: DomoPermissionError,
    404: DomoNotFoundError,
    429: DomoRateLimitError,
}


def error_for_status(status: int) -> type[DomoError]:
    """The exception type that stands for an HTTP status."""
    if status >= 500:
        return DomoServerError
    return STATUS_ERRORS.get(status, DomoInvalidRequestError if status < 500 else DomoServerError)


class DomoForeignExportError(DomoError):
    """Domo answered with an export made for another request, which cannot be adopted."""

    permanent = True
    hint = (
        "Domo returns its previous export while a DataSet is unchanged, whatever request made it, "
        "and documents no way to force a new one. Materialize again after the DataSet next "
        "changes, or give this query a DataSet of its own (e.g. a Domo DataSet View) so that "
        "other requests' exports cannot stand in for it"
    )


class DomoStaleExportError(DomoError):
    """An export is still listed as running long after it should have ended."""

    permanent = True
    hint = (
        "Domo's history can keep an export that never finished. Ask Domo support to cancel it "
        "(quote the export id), or raise stale_export_after if exports of this DataSet really "
        "take that long"
    )


def is_permanent(exc: BaseException) -> bool:
    """Whether a failure cannot be mended by trying again (no step retry is worth it).

    Domo errors say so themselves (``DomoError.permanent``); configuration errors found at run
    time (credentials, destination guard, partition column) are permanent too; anything else
    (network, S3, unexpected) may pass.
    """
    if isinstance(exc, DomoError):
        return exc.permanent
    return isinstance(exc, ConfigurationError)


class ConfigurationError(RuntimeError):
    """Base of errors that say the catalog or the environment must change before a retry."""
