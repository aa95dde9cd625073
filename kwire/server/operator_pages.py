"""kwire's operator pages over HTTP (`kwire.metrics.listener`, `kwire.status.listener`).

Each page is a (HOST:PORT, path, handler) triple; pages configured on one address share one
`HttpEdge`. Nothing here listens unless its key is set. The bound port of a listener given
port 0 is printed at start, as the controller listener's is.
"""

from __future__ import annotations

import logging

import trio

from kwire.server.config import ConfigError, ControllerServerConfig
from kwire.server.http_edge import Handler, HttpEdge, group_routes
from kwire.server.node import ControllerNode
from kwire.server.status_page import status_routes

log = logging.getLogger("kwire.http")

Page = tuple[tuple[str, int], str, Handler]


def operator_pages(config: ControllerServerConfig, node: ControllerNode) -> list[Page]:
    """Every page the configuration turns on, for `node`: `/metrics` (Prometheus text,
    `kwire.server.metrics`) on `kwire.metrics.listener`; `/status` and `/status.json`
    (`kwire.server.status_page`) on `kwire.status.listener`."""
    pages: list[Page] = []
    if config.metrics_listener is not None:
        # Imported here: prometheus_client loads only when the page is turned on.
        from kwire.server.metrics import metrics_page

        pages.append((config.metrics_listener, "/metrics", metrics_page(node)))
    # The status page (kwire.server.status_page): /status and /status.json.
    if config.status_listener is not None:
        routes = status_routes(node)
        pages += [(config.status_listener, path, handler) for path, handler in routes.items()]
    return pages


async def serve_operator_pages(
    pages: list[Page],
    task_status: trio.TaskStatus[list[tuple[str, int, list[str]]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bind each address's listener and serve its pages until cancelled. Reports
    (host, bound port, paths) per address; a bind failure is a ConfigError naming the key's
    address, before anything is served."""
    grouped = group_routes(pages)
    bound: list[tuple[trio.SocketListener, ...]] = []
    served: list[tuple[str, int, list[str]]] = []
    try:
        for (host, port), routes in grouped.items():
            try:
                listeners = await trio.open_tcp_listeners(port, host=host)
            except OSError as exc:
                raise ConfigError(
                    f"operator pages {', '.join(sorted(routes))} cannot listen on "
                    f"{host}:{port}: {exc.strerror or exc}"
                ) from None
            bound.append(tuple(listeners))
            served.append((host, int(listeners[0].socket.getsockname()[1]), sorted(routes)))
        async with trio.open_nursery() as nursery:
            for sockets, routes in zip(bound, grouped.values(), strict=True):
                edge = HttpEdge(routes, name="operator pages")
                await nursery.start(edge.run, list(sockets))
            task_status.started(served)
    finally:
        for sockets in bound:
            for listener in sockets:
                listener.socket.close()
