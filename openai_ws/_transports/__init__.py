"""The transports: the only place that imports websocket-client, requests or urllib3.

* :mod:`.ws`: one WebSocket connection (websocket-client for the handshake,
  sending, pings and closing; :mod:`openai_ws._protocol.frames` for reading).
* :mod:`.http`: the Responses API over HTTP (requests, with urllib3's ``Retry``).
* :mod:`.http_cancel`: cancelling an HTTP call from another thread.

They move bytes with their library and translate its exceptions into
:mod:`openai_ws.errors`; they know nothing of lanes, requests in flight or
fallback policy. The libraries are imported on first use, not with the
package: websocket-client, ssl and :mod:`.dial` when the first
:class:`~.ws.WSTransport` is made (:func:`load_ws`), requests and urllib3 on
the first HTTP call (:func:`load_http`). Together they cost several times
what the rest of the package does to import.
"""

import threading
from types import ModuleType

__all__ = ["load_http", "load_ws"]

_imports = threading.RLock()
"""Held while a transport library is imported for the first time."""


def load_http() -> ModuleType:
    """The :mod:`.http` module (and :mod:`.http_cancel`), imported on first use.

    The first import runs under a lock: two threads importing requests and
    urllib3 at once can each see the other's half-initialised modules and fail
    with ``ImportError`` (their imports are circular), which happened when two
    requests fell back to HTTP at the same moment.
    """
    with _imports:
        from . import http, http_cancel  # noqa: F401 - both halves of the HTTP stack

    return http


def load_ws() -> ModuleType:
    """websocket-client, with what a WebSocket connect needs (ssl, :mod:`.dial`), on first use.

    Imported under the same lock as :func:`load_http`, for the same reason:
    websocket-client's modules import each other, and the first sockets of
    several sessions may be opened from several threads at once.
    """
    with _imports:
        import websocket

        from . import dial, messages  # noqa: F401 - the connect path of ws.py

    return websocket
