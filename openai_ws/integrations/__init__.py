"""Recipes that run ``openai_ws`` inside other engines, one module per engine.

* :mod:`openai_ws.integrations.ray`: a Ray Data ``map_batches`` class that keeps
  one WebSocket session per actor, for jobs of many requests on a cluster.

What this package must never do: import an engine when it is imported (each
recipe imports its engine when it is used, and says which extra to install
when it is missing), or hold recovery policy of its own (the sessions do that).
"""
