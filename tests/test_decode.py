"""The reader's JSON decoding (``_protocol/decode.py``) agrees with ``json.loads`` on every frame.

The reader calls the C scanner directly and falls back to ``json.loads`` for
anything that is not one bare JSON value; these tests hold it to exactly the
values (and refusals) ``json.loads`` gives, as a property over JSON values
with and without padding, and through a session's real reader thread.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from fake_transport import FakeServer, FakeTransport, answer, options
from hypothesis import given
from hypothesis import strategies as st

from openai_ws._protocol.decode import scan
from openai_ws.session import Session

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_space = st.text(alphabet=" \t\r\n", max_size=3)


@given(_json, st.booleans())
def test_a_bare_json_value_decodes_as_json_loads_does(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    decoded = scan(text)
    if value is None:
        assert decoded is None  # null is no event; json.loads is asked and says None too
    else:
        assert decoded == json.loads(text) == value


@given(_json, _space, _space, st.sampled_from(["", "x", "}", ",1", "\ufeff"]))
def test_anything_but_a_bare_value_is_left_to_json_loads(
    value: Any, before: str, after: str, junk: str
) -> None:
    text = before + json.dumps(value) + after + junk
    if text == json.dumps(value):
        return  # nothing around it: the case above
    assert scan(text) is None


def test_a_byte_order_mark_or_empty_frame_is_left_to_json_loads() -> None:
    assert scan("\ufeff{}") is None
    assert scan("") is None
    assert scan("{") is None
    assert scan("[" * 100_000) is None  # RecursionError inside the scanner: json.loads decides


def test_the_reader_decodes_padded_frames_and_counts_only_real_garbage() -> None:
    """Frames with whitespace around the JSON reach their request as json.loads decodes them;
    a byte order mark, trailing data and an unclosed object are malformed, as before."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        created, delta, done, completed = (
            json.dumps(e) for e in answer("resp_1", "ok", frame.get("stream_id"))
        )
        transport.push(
            " " + created,
            "\ufeff" + delta,  # refused by json.loads: malformed
            delta + "\r\n",
            delta + " x",  # trailing data: malformed
            "{" + delta,  # unclosed: malformed
            "\t" + done + " ",
            "\n" + completed,
        )

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        with session.stream(model="m", input="x") as events:
            kinds = [type(e).__name__ for e in events]
        stats = session.stats
    assert kinds == [
        "ResponseCreated",
        "ResponseOutputTextDelta",
        "ResponseOutputItemDone",
        "ResponseCompleted",
    ]
    assert stats.malformed_frames == 3
