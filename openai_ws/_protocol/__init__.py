"""The sans-IO layer: pure rules of the wire, driven by the session and the transports.

* :mod:`.routing`: which ``stream_id`` lane a request goes to, which request an
  incoming event belongs to, which events are terminal, how a close is classified.
* :mod:`.frames`: RFC 6455 frames and messages out of received bytes.
* :mod:`.sse`: ``text/event-stream`` events out of received bytes.
* :mod:`.decode`: JSON values out of text frames (the scanner ``json.loads`` runs).
* :mod:`.retry`: which failures are retried, and after how long.

Nothing in this package does I/O, starts a thread, reads a clock, draws random
numbers, takes a lock or logs: callers pass time and jitter in, and the tests
drive every rule with plain values.
"""
