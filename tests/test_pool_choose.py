"""``pool.choose`` over any pool: a property test of where a new request goes.

Each socket is a real routing core with some requests in flight (0 to 20; the
service runs 16 at once), and a request book of the same size; some have
first answered ``store: false`` requests on every lane name, which leaves no
lane a new request could take without evicting one of those answers. For any pool and
any ``max_sockets`` the choice must be: a socket that has room whenever one does
(the least busy of those), ``None`` (open another) only when none has room and
the pool is below ``max_sockets``, else the least busy socket (the server queues).
"""

from __future__ import annotations

import time
from typing import Any, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from openai_ws._protocol.routing import ConnectionCore
from openai_ws._session.connection import Connection
from openai_ws._session.pool import choose


def _socket(inflight: int, lanes: bool, kept: bool) -> Connection:
    core = ConnectionCore(use_lanes=lanes)
    conn = Connection(transport=None, core=core, opened_at=time.monotonic())  # type: ignore[arg-type]
    if kept and lanes:  # every lane name caches a store=false answer
        for key in range(100, 132):
            lane = core.open(key, unstored=True).lane
            core.route(
                {"type": "response.created", "response": {"id": f"r{key}"}, "stream_id": lane}
            )
            core.route(
                {"type": "response.completed", "response": {"id": f"r{key}"}, "stream_id": lane}
            )
    for key in range(inflight):
        core.open(key)
        conn.requests[key] = object()  # type: ignore[assignment]
    return conn


@settings(max_examples=300, deadline=None)
@given(
    sockets=st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=1, max_size=5),
    max_sockets=st.integers(1, 6),
    lanes=st.booleans(),
)
def test_a_new_request_goes_where_it_starts_at_once_or_opens_a_socket(
    sockets: List[Tuple[int, bool]], max_sockets: int, lanes: bool
) -> None:
    pool = [_socket(n, lanes, kept) for n, kept in sockets]
    chosen: Any = choose(pool, None, max_sockets)
    room = [conn for conn in pool if conn.core.has_room()]
    for conn, (n, kept) in zip(pool, sockets):
        assert (conn in room) == (n < 16 and not (kept and lanes))
    if room:
        assert chosen in room
        assert len(chosen.requests) == min(len(conn.requests) for conn in room)
    elif len(pool) < max_sockets:
        assert chosen is None
    else:
        assert chosen in pool
        assert len(chosen.requests) == min(len(conn.requests) for conn in pool)
