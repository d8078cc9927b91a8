"""The Dask cluster a re-judging runs on: a running ``dask scheduler`` by address
(``--cluster tcp://host:8786``) or a local cluster of N worker processes (``--local N``).

Local workers are processes with one thread each (every task runs a pytest child of its own:
threads would only share the GIL of the waiting parent), with no dashboard. A scheduler that
cannot be reached within :data:`CONNECT_TIMEOUT_S` is a :class:`ClusterUnreachable` (one line,
exit 3), never a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from harness.errors import ConfigError, HarnessError, one_line

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 10.0
ADDRESS = re.compile(r"^(?:(tcp|tls|ws|wss|inproc|ucx)://)?\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")


class ClusterUnreachable(HarnessError):
    """The Dask scheduler could not be reached (or a local cluster could not start)."""


def check_address(address: str) -> str:
    """``address`` as a scheduler address (``tcp://host:port`` or ``host:port``)."""
    text = address.strip()
    if not ADDRESS.match(text):
        raise ConfigError(f"{address!r} is not a scheduler address; allowed: "
                          "tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786) or HOST:PORT",
                          field="--cluster")
    return text if "://" in text else f"tcp://{text}"


def check_workers(n: int) -> int:
    if n < 1:
        raise ConfigError(f"{n} local workers; allowed: 1 or more", field="--local")
    return n


@contextmanager
def dask_client(cluster: str | None = None, local: int | None = None, *,
                timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Client]:
    """A client of the scheduler at ``cluster``, or of a local cluster of ``local`` worker
    processes started (and stopped) here. Exactly one of them."""
    if (cluster is None) == (local is None):
        raise ConfigError("give one of --cluster ADDRESS or --local N, not both",
                          field="--cluster")
    from distributed import Client, LocalCluster

    if cluster is not None:
        address = check_address(cluster)
        try:
            client = Client(address, timeout=f"{timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise ClusterUnreachable(one_line(
                f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s: "
                f"{exc}")) from None
        try:
            yield client
        finally:
            client.close()
        return
    assert local is not None
    try:
        local_cluster = LocalCluster(n_workers=check_workers(local), processes=True,
                                     threads_per_worker=1, dashboard_address=None,
                                     silence_logs=logging.ERROR)
    except (OSError, TimeoutError) as exc:
        raise ClusterUnreachable(one_line(f"cannot start a local Dask cluster: {exc}")
                                 ) from None
    try:
        with Client(local_cluster) as client:
            yield client
    finally:
        local_cluster.close()


__all__ = ["ADDRESS", "CONNECT_TIMEOUT_S", "ClusterUnreachable", "check_address",
           "check_workers", "dask_client"]
