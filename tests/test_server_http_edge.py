"""kwire's operator HTTP edge: routes answer GET/HEAD, everything else gets a clear status,
and no client can stop it from serving others."""

from __future__ import annotations

import trio

from kwire.server import http_edge
from kwire.server.http_edge import HttpEdge, HttpRequest, HttpResponse, group_routes


def hello(request: HttpRequest) -> HttpResponse:
    name = request.query.get("name", ["world"])[0]
    return HttpResponse.text(200, f"hello {name}\n")


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


async def start(nursery: trio.Nursery) -> int:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    edge = HttpEdge({"/hello": hello, "/broken": broken})
    await nursery.start(edge.run, listeners)
    return int(listeners[0].socket.getsockname()[1])


async def exchange(port: int, raw: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        chunks = []
        while chunk := await stream.receive_some(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def get(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode()


async def test_a_route_answers_with_its_body_and_the_query() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            answer = await exchange(port, get("/hello?name=kafka"))
            nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 12\r\n" in answer
    assert answer.endswith(b"\r\n\r\nhello kafka\n")


async def test_head_has_the_length_but_no_body() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            answer = await exchange(port, get("/hello", "HEAD"))
            nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 12\r\n" in answer
    assert answer.endswith(b"\r\n\r\n")


async def test_unknown_paths_and_methods_are_refused_by_name() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            missing = await exchange(port, get("/nope"))
            post = await exchange(port, get("/hello", "POST", "Content-Length: 0\r\n"))
            nursery.cancel_scope.cancel()
    assert missing.startswith(b"HTTP/1.1 404 ")
    assert b"no page at /nope; pages: /broken, /hello" in missing
    assert post.startswith(b"HTTP/1.1 405 ")
    assert b"Allow: GET, HEAD" in post


async def test_bodies_oversized_heads_and_garbage_get_their_status() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            body = await exchange(port, get("/hello", extra="Content-Length: 5\r\n") + b"12345")
            huge = await exchange(port, get("/hello", extra=f"X-Pad: {'a' * 20000}\r\n"))
            garbage = await exchange(port, b"\x16\x03\x01 not http at all\r\n\r\n")
            after = await exchange(port, get("/hello"))
            nursery.cancel_scope.cancel()
    assert body.startswith(b"HTTP/1.1 413 ")
    assert huge.startswith(b"HTTP/1.1 431 ")
    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert after.startswith(b"HTTP/1.1 200 ")


async def test_a_failing_page_answers_500_and_the_server_keeps_serving() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            failed = await exchange(port, get("/broken"))
            after = await exchange(port, get("/hello"))
            nursery.cancel_scope.cancel()
    assert failed.startswith(b"HTTP/1.1 500 ")
    assert b"see the controller's log" in failed
    assert after.startswith(b"HTTP/1.1 200 ")


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    keep = b"GET /hello?name=a HTTP/1.1\r\nHost: x\r\n\r\n"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            answer = await exchange(port, keep + get("/hello?name=b"))
            nursery.cancel_scope.cancel()
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.index(b"hello a") < answer.index(b"hello b")


async def test_an_idle_connection_is_closed_and_others_are_served_meanwhile(
    monkeypatch: object,
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(http_edge, "IDLE_TIMEOUT_S", 0.3)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            idle = await trio.open_tcp_stream("127.0.0.1", port)
            await idle.send_all(b"GET /hello HTTP/1.1\r\n")  # never finished
            served = await exchange(port, get("/hello"))
            started = trio.current_time()
            assert await idle.receive_some(100) == b""
            waited = trio.current_time() - started
            await idle.aclose()
            nursery.cancel_scope.cancel()
    assert served.startswith(b"HTTP/1.1 200 ")
    assert waited < 2


def test_pages_on_one_address_share_a_server_and_clashes_are_named() -> None:
    grouped = group_routes(
        [
            (("127.0.0.1", 1), "/metrics", hello),
            (("127.0.0.1", 1), "/status", hello),
            (("127.0.0.1", 2), "/status", hello),
        ]
    )
    assert {a: sorted(r) for a, r in grouped.items()} == {
        ("127.0.0.1", 1): ["/metrics", "/status"],
        ("127.0.0.1", 2): ["/status"],
    }
    try:
        group_routes([(("h", 1), "/x", hello), (("h", 1), "/x", broken)])
    except ValueError as exc:
        assert str(exc) == "two pages at h:1/x"
    else:
        raise AssertionError("a clash was accepted")


def test_operator_listeners_are_off_unless_configured_and_parsed_as_host_port() -> None:
    from kwire.server.config import ConfigError, ControllerServerConfig

    base = {
        "process.roles": "controller",
        "node.id": "1",
        "controller.quorum.voters": "1@127.0.0.1:19093",
        "listeners": "CONTROLLER://127.0.0.1:19093",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": "/data/controller-1",
    }
    default = ControllerServerConfig.from_properties(base)
    assert (default.metrics_listener, default.status_listener) == (None, None)
    on = ControllerServerConfig.from_properties(
        {**base, "kwire.metrics.listener": "127.0.0.1:9404", "kwire.status.listener": ":0"}
    )
    assert on.metrics_listener == ("127.0.0.1", 9404)
    assert on.status_listener == ("", 0)
    try:
        ControllerServerConfig.from_properties({**base, "kwire.metrics.listener": "9404"})
    except ConfigError as exc:
        assert "kwire.metrics.listener: cannot parse host and port from '9404'" in str(exc)
    else:
        raise AssertionError("a listener without a host:port was accepted")


async def test_operator_pages_share_an_address_and_a_taken_port_is_a_config_error() -> None:
    from kwire.server.config import ConfigError
    from kwire.server.operator_pages import serve_operator_pages

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            served = await nursery.start(
                serve_operator_pages,
                [(("127.0.0.1", 0), "/hello", hello), (("127.0.0.1", 0), "/broken", broken)],
            )
            [(host, port, paths)] = served
            answer = await exchange(port, get("/hello?name=pages"))
            taken = [(("127.0.0.1", port), "/hello", hello)]
            try:
                await nursery.start(serve_operator_pages, taken)
            except ConfigError as exc:
                refused = str(exc)
            nursery.cancel_scope.cancel()
    assert (host, paths) == ("127.0.0.1", ["/broken", "/hello"])
    assert answer.endswith(b"hello pages\n")
    assert refused.startswith(f"operator pages /hello cannot listen on 127.0.0.1:{port}: ")
