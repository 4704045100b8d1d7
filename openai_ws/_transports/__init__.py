"""The transports: the only place that imports websocket-client, requests or urllib3.

* :mod:`.ws`: one WebSocket connection (websocket-client for the handshake,
  sending, pings and closing; :mod:`openai_ws._protocol.frames` for reading).
* :mod:`.http`: the Responses API over HTTP (requests, with urllib3's ``Retry``).
* :mod:`.http_cancel`: cancelling an HTTP call from another thread.

They move bytes with their library and translate its exceptions into
:mod:`openai_ws.errors`; they know nothing of lanes, requests in flight or
fallback policy. :mod:`.http` is imported on first HTTP use, not with the package.
"""

import threading
from types import ModuleType

__all__ = ["load_http"]

_http_import = threading.Lock()


def load_http() -> ModuleType:
    """The :mod:`.http` module (and :mod:`.http_cancel`), imported on first use.

    The first import runs under a lock: two threads importing requests and
    urllib3 at once can each see the other's half-initialised modules and fail
    with ``ImportError`` (their imports are circular), which happened when two
    requests fell back to HTTP at the same moment.
    """
    with _http_import:
        from . import http, http_cancel  # noqa: F401 - both halves of the HTTP stack

    return http
