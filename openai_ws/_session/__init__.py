"""The session's machinery, behind the :class:`~openai_ws.Session` face.

* :mod:`.options`: resolved settings and counters (every default lives there).
* :mod:`.inbox`: the bounded handoff from a reader thread to one caller.
* :mod:`.request`: one request's state across its attempts.
* :mod:`.connection`: one socket, its routing core and its reader thread.
* :mod:`.engine`: the connections, register-then-send, routing, close.
* :mod:`.fallback`: when a request goes over HTTP.
* :mod:`.attempt`: one request across its attempts, in the caller's thread
  (decide, then act).

Data flows one way: socket, reader thread, routing core, inbox, caller.
"""
