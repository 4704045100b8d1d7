"""JSON values out of text frames, with the scanner ``json.loads`` itself runs.

``json.loads(text)`` goes through three Python frames (``loads``,
``JSONDecoder.decode``, ``raw_decode``) and a regular expression for the
trailing whitespace before it reaches the C scanner that does the work. For a
200-character delta that wrapping is about half of the decoding time, and the
reader decodes every frame. :func:`scan` calls the scanner directly: a frame
that is one JSON value with nothing around it (every frame a server sends)
decodes to exactly what ``json.loads`` returns. Anything else (surrounding
whitespace, a byte order mark, trailing data, malformed JSON) makes
:func:`scan` return ``None``, and the caller decodes that frame with
``json.loads``, which gives it the same result or error it always did.

This module must never do I/O, keep state between calls or swallow a value
``json.loads`` would refuse.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Tuple

__all__ = ["SCAN_ONCE", "scan"]

# typeshed leaves scan_once out of JSONDecoder (it is set in __init__, undocumented but
# present since Python 2.6 on every CPython and PyPy): reached with getattr.
SCAN_ONCE: Callable[[str, int], Tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009
"""The C scanner (``_json.make_scanner``) of a default decoder: the same options as
``json.loads`` (strict strings, ``float``/``int``, ``NaN``/``Infinity`` accepted).
``SCAN_ONCE(text, 0)`` returns ``(value, end)``; it raises ``StopIteration`` when no
value starts at 0 and ``JSONDecodeError`` (or ``RecursionError``) for a bad one."""


def scan(text: str) -> Optional[Any]:
    """The JSON value that is all of ``text``, or ``None``: then decode with ``json.loads``.

    ``None`` is also what a frame holding JSON ``null`` gives, which is not an
    event either; ``json.loads`` then returns it as it would.
    """
    try:
        value, end = SCAN_ONCE(text, 0)
    except Exception:  # StopIteration, JSONDecodeError, RecursionError: json.loads decides
        return None
    return value if end == len(text) else None
