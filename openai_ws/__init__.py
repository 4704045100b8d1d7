"""openai_ws: a synchronous client for the OpenAI Responses API over a persistent WebSocket."""

from ._version import __version__

__all__ = ["__version__"]
