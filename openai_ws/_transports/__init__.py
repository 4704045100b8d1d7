"""The transports: the only place that imports websocket-client, requests or urllib3.

* :mod:`.ws`: one WebSocket connection (websocket-client for the handshake,
  sending, pings and closing; :mod:`openai_ws._protocol.frames` for reading).
* :mod:`.http`: the Responses API over HTTP (requests, with urllib3's ``Retry``).
* :mod:`.http_cancel`: cancelling an HTTP call from another thread.

They move bytes with their library and translate its exceptions into
:mod:`openai_ws.errors`; they know nothing of lanes, requests in flight or
fallback policy. :mod:`.http` is imported on first HTTP use, not with the package.
"""
