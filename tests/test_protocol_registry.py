"""The API table holds data only; an API's message module is imported on its first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from kwire.protocol.framing import decode_request, encode_request
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS

ROOT = Path(__file__).resolve().parent.parent


def run_fresh(code: str) -> str:
    """Run `code` in a new interpreter (nothing imported yet) and return what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_importing_the_index_imports_no_api_message_module() -> None:
    out = run_fresh(
        """
        import sys
        from kwire.protocol.messages.index import APIS
        loaded = [api.module for api in APIS.values()
                  if f"kwire.protocol.messages.{api.module}" in sys.modules]
        print(len(APIS), loaded)
        """
    )
    assert out == f"{len(APIS)} []"


def test_versions_and_listeners_are_read_without_importing_the_messages() -> None:
    out = run_fresh(
        """
        import sys
        from kwire.protocol.messages.index import APIS
        api = APIS[19]
        print(api.name, api.lowest_version, api.highest_version, api.first_flexible_version,
              sorted(api.listeners), "kwire.protocol.messages.create_topics" in sys.modules)
        """
    )
    # CreateTopics in Kafka 3.9/4.3: versions 0-7, flexible from 5.
    assert out == "CreateTopics 0 7 5 ['broker', 'controller', 'zkBroker'] False"


def test_a_lazily_imported_message_is_the_same_class_however_it_is_reached() -> None:
    out = run_fresh(
        """
        from kwire.protocol.framing import decode_request, encode_request
        from kwire.protocol.messages.headers import RequestHeader
        from kwire.protocol.messages.index import APIS
        header = RequestHeader(request_api_key=20, request_api_version=5, correlation_id=1)
        first = APIS[20].request
        from kwire.protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse
        body = DeleteTopicsRequest(topic_names=["a"])
        _, decoded = decode_request(encode_request(header, body))
        print(first is DeleteTopicsRequest, type(decoded) is DeleteTopicsRequest,
              APIS[20].response is DeleteTopicsResponse, decoded == body)
        """
    )
    assert out == "True True True True"


def test_every_api_finds_its_request_and_response_in_its_module() -> None:
    for key, api in APIS.items():
        assert key == api.request.API_KEY  # type: ignore[attr-defined]
        assert key == api.response.API_KEY  # type: ignore[attr-defined]
        assert api.request.__module__ == f"kwire.protocol.messages.{api.module}"
        assert f"{api.name}Response" == api.response.NAME


def test_a_request_decodes_the_same_on_its_first_and_later_frames() -> None:
    header = RequestHeader(request_api_key=19, request_api_version=7, correlation_id=3)
    request = APIS[19].request(timeout_ms=5)  # type: ignore[call-arg]
    frame = encode_request(header, request)
    assert decode_request(frame) == decode_request(frame) == (header, request)
