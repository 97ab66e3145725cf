"""Everything a running sandbox remembers, and how to put it back to its initial state."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .auth import Authenticator, Credentials
from .behaviour import DEFAULT_MODE, Behaviour, check_mode
from .datasets import (
    DEFAULT_SYNTHETIC_ROWS,
    SPECS,
    Dataset,
    DatasetSpec,
    now_ms,
    synthetic_spec,
)
from .exports import ExportEngine
from .faults import FaultInjector
from .history import HistoryTarget, build_history
from .logs import TicketedLog
from .s3 import MotoS3


@dataclass(frozen=True)
class LoggedRequest:
    """One Domo API request as the request log shows it.

    Attributes:
        method: HTTP method.
        path: Path without the query string.
        status: Response status, or None when no response was sent (reset, drop_response).
        time: Epoch seconds when the request arrived.
        fault: The fault action applied, or None.
        credentials: The kinds of credential the request carried (``developer_token``,
            ``bearer``, ``basic``...), never their values.
    """

    method: str
    path: str
    status: int | None
    time: float
    fault: str | None = None
    credentials: tuple[str, ...] = ()


class RequestLog(TicketedLog[LoggedRequest]):
    """The log of Domo API requests (control API requests are not logged); thread-safe."""

    def record(
        self,
        method: str,
        path: str,
        status: int | None,
        fault: str | None,
        credentials: Sequence[str],
        ticket: int,
    ) -> None:
        """Append an entry timestamped now, unless the log was cleared since the request
        arrived (its `ticket`)."""
        self.append(
            LoggedRequest(method, path, status, time.time(), fault, tuple(credentials)), ticket
        )


class SandboxState:
    """The state of one sandbox run. `lock` guards `datasets`, `behaviours` and `mode`.

    Args:
        credentials: Tokens and OAuth client of the run.
        s3: The moto server the exports write to.
        synthetic_datasets: Synthetic DataSets present from the start (and after each reset).
        synthetic_rows: Rows of each of those.
        mode: Sandbox mode (``default`` or ``strict``) whose preset every behaviour gets.

    Raises:
        ValueError: For an unknown mode.
    """

    def __init__(
        self,
        credentials: Credentials,
        s3: MotoS3,
        synthetic_datasets: int = 0,
        synthetic_rows: int = DEFAULT_SYNTHETIC_ROWS,
        mode: str = DEFAULT_MODE,
    ) -> None:
        self.lock = threading.RLock()
        self.mode = check_mode(mode)
        self._initial_synthetic = tuple(
            synthetic_spec(index, synthetic_rows) for index in range(synthetic_datasets)
        )
        self.credentials = credentials
        self.auth = Authenticator(credentials)
        self.s3 = s3
        self.engine = ExportEngine(lambda: s3.url, s3.sts)
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self.datasets: dict[str, Dataset] = {}
        self.behaviours: dict[str, Behaviour] = {}
        self._stopping = threading.Event()
        self._initial_data()

    def _initial_data(self) -> None:
        self.datasets = {}
        self.behaviours = {}
        for spec in (*SPECS, *self._initial_synthetic):
            self._add_dataset(spec)

    def _add_dataset(self, spec: DatasetSpec) -> None:
        self.datasets[spec.id] = Dataset(spec)
        self.behaviours[spec.id] = Behaviour.for_dataset(spec, self.mode)

    def set_mode(self, mode: str) -> None:
        """Switch the sandbox mode: every DataSet's behaviour gets its preset now, and
        behaviours made later (reset, new synthetic DataSets) get it too.

        Raises:
            ValueError: For an unknown mode.
        """
        check_mode(mode)
        with self.lock:
            self.mode = mode
            self.behaviours = {
                dataset_id: behaviour.with_mode(mode)
                for dataset_id, behaviour in self.behaviours.items()
            }

    def add_history(self, dataset_id: str, body: Mapping[str, Any]) -> list[str]:
        """Inject entries into a DataSet's export list (see `history.build_history`).

        Returns:
            The exportIds of the injected entries.

        Raises:
            KeyError: For an unknown DataSet.
            ValueError: For an unknown preset or option, or a value out of range.
        """
        with self.lock:
            dataset, behaviour = self.datasets[dataset_id], self.behaviours[dataset_id]
            target = HistoryTarget(
                dataset_id=dataset_id,
                compression=dataset.spec.compression,
                row_count=dataset.row_count,
                url_style=behaviour.url_style,
                timestamp_style=behaviour.timestamp_style,
                now_ms=now_ms(),
            )
        history = build_history(body, target)  # outside the lock: it may hold many entries
        self.engine.add_history(dataset_id, history.entries, history.blocking)
        return history.export_ids

    def add_synthetic_datasets(self, count: int, rows: int = DEFAULT_SYNTHETIC_ROWS) -> list[str]:
        """Make sure synthetic DataSets ``0..count-1`` exist and return their ids, in order.

        A synthetic DataSet that already exists keeps its rows, exports and behaviour, so the
        call is idempotent. Those added here are dropped by `reset` (the ones the sandbox was
        started with are kept).

        Raises:
            ValueError: If `count` or `rows` is out of range.
        """
        specs = [synthetic_spec(index, rows) for index in range(count)]
        with self.lock:
            for spec in specs:
                if spec.id not in self.datasets:
                    self._add_dataset(spec)
        return [spec.id for spec in specs]

    def reset(self, s3: bool = True) -> None:
        """Put exports (injected history too), faults, S3 delay rules (releasing what they
        hold), behaviours, data, the request log, the STS log and refused STS actions, the token
        lifetime and (when `s3`) moto's buckets back to their initial state. The mode stays: the
        fresh behaviours get its preset. Credentials STS issued keep their session policy and
        expiration."""
        with self.lock:
            self.engine.reset()
            self.faults.reset()
            self.requests.clear()
            self.s3.sts.reset()
            self.s3.delays.reset()
            self.s3.s3_calls.clear()
            self.auth.reset()
            self._initial_data()
            if s3:
                self.s3.reset()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the sandbox stops first; return False if it is stopping."""
        return not self._stopping.wait(seconds)

    def stop(self) -> None:
        """Wake sleepers and end the export workers."""
        self._stopping.set()
        self.engine.stop()
