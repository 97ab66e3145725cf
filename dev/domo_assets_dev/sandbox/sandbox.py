"""`Sandbox`: a moto S3 server and the Domo-compatible server, started and stopped together."""

from __future__ import annotations

import ipaddress
import socket
from types import TracebackType
from typing import Any, Self

from .auth import Credentials
from .behaviour import DEFAULT_MODE, check_mode
from .control import SandboxControl
from .datasets import DEFAULT_SYNTHETIC_ROWS
from .domo_server import DomoServer
from .s3 import ACCESS_KEY_ID, DEFAULT_REGION, SECRET_ACCESS_KEY, MotoS3, make_client
from .state import SandboxState
from .users import MAIN_USER

DEFAULT_HOST = "127.0.0.1"


def loopback_address(host: str) -> str:
    """Return the IPv4 address of `host`, which must be a loopback address.

    Raises:
        ValueError: If `host` is not a loopback address: the control API has no auth.
    """
    address = socket.gethostbyname(host)
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"The sandbox only listens on loopback addresses, not {host!r}")
    return address


class Sandbox:
    """A local stand-in for Domo plus the S3 it exports to.

    Use it as a context manager, or call `start` and `stop`. Several sandboxes may run one
    after another in a process; `start` resets moto's process-global state and seeds the
    buckets, so two sandboxes must not run at the same time in one process.

    Args:
        token: Developer token of the main user ``analyst`` (random if not given).
        port: Port of the Domo server (0: a free one).
        s3_port: Port of the moto S3 server (0: a free one).
        host: Loopback address both servers bind.
        verbose: Keep moto's per-request log lines.
        synthetic_datasets: How many synthetic DataSets (``synthetic-0000``...: small, readable
            by the main user, deterministic ids from ``datasets.synthetic_dataset_id``) to serve
            besides the samples; they survive `SandboxControl.reset`.
        synthetic_rows: Rows of each synthetic DataSet.
        mode: ``default``, or ``strict``: every DataSet's behaviour reads Domo's documentation
            at its harshest (previous_export any_request, query_shape objects, sql_quotes
            mysql); `SandboxControl.set_mode` switches it later, `reset` keeps it.

    Raises:
        ValueError: For a host that is not a loopback address, or an unknown mode.
    """

    def __init__(
        self,
        token: str | None = None,
        port: int = 0,
        s3_port: int = 0,
        host: str = DEFAULT_HOST,
        verbose: bool = False,
        synthetic_datasets: int = 0,
        synthetic_rows: int = DEFAULT_SYNTHETIC_ROWS,
        mode: str = DEFAULT_MODE,
    ) -> None:
        self._host = loopback_address(host)
        self._mode = check_mode(mode)
        self._synthetic = (synthetic_datasets, synthetic_rows)
        self._port = port
        self._credentials = Credentials.generate(token)
        self._s3 = MotoS3(self._host, s3_port, verbose=verbose)
        self._state: SandboxState | None = None
        self._server: DomoServer | None = None
        self._control: SandboxControl | None = None

    @property
    def token(self) -> str:
        """Developer token of the main user, ``analyst``."""
        return self._credentials.tokens[MAIN_USER]

    @property
    def tokens(self) -> dict[str, str]:
        """Developer token of every user (``analyst``, ``west_manager``, ``hr_admin``)."""
        return dict(self._credentials.tokens)

    @property
    def client_id(self) -> str:
        """OAuth client id (the analyst's)."""
        return self._credentials.client_id

    @property
    def client_secret(self) -> str:
        """OAuth client secret."""
        return self._credentials.client_secret

    @property
    def domo_url(self) -> str:
        """URL of the Domo server (instance and platform API paths, and ``/_sandbox/``)."""
        if self._server is None:
            raise RuntimeError("The sandbox is not running")
        return self._server.url

    @property
    def s3_url(self) -> str:
        """URL of the moto server (S3, STS and IAM)."""
        return self._s3.url

    @property
    def control(self) -> SandboxControl:
        """Client of the control API."""
        if self._control is None:
            self._control = SandboxControl(self.domo_url)
        return self._control

    @property
    def export_kms_key_arn(self) -> str:
        """The ARN of the seeded KMS key ``alias/domo-exports`` (moto draws a new one at each
        reset)."""
        arn = self._s3.export_kms_key_arn
        if arn is None:
            raise RuntimeError("The sandbox is not running")
        return arn

    def env(self) -> dict[str, str]:
        """Return the environment variables that point a Domo + S3 client at the sandbox."""
        return {
            "DOMO_INSTANCE_URL": self.domo_url,
            "DOMO_API_URL": self.domo_url,
            "DOMO_DEVELOPER_TOKEN": self.token,
            "DOMO_CLIENT_ID": self.client_id,
            "DOMO_CLIENT_SECRET": self.client_secret,
            "AWS_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
        }

    def s3_client(self, region: str = DEFAULT_REGION) -> Any:
        """Return a boto3 S3 client for the moto server (close it when done)."""
        return make_client("s3", self.s3_url, region=region)

    def start(self) -> Self:
        """Start moto (reset and seeded), then the Domo server; return the sandbox."""
        if self._server is not None:
            return self
        self._s3.start()
        try:
            self._state = SandboxState(
                self._credentials, self._s3, *self._synthetic, mode=self._mode
            )
            self._server = DomoServer(self._state, self._host, self._port)
            self._server.start()
        except BaseException:
            self._s3.stop()
            self._state = None
            raise
        return self

    def stop(self) -> None:
        """Stop both servers, end the export workers and free the ports."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._state is not None:
            self._state.stop()
            self._state = None
        self._s3.stop()
        self._control = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
