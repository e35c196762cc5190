"""A plugin author's kit: what two plugins would otherwise each write (import the module).

* :mod:`~reflex_core.plugin.kit.chunks`: action kinds, hold / shift / decay a chunk, the last
  good chunk;
* :mod:`~reflex_core.plugin.kit.jsonl`: crash-safe, rotated JSONL logs (audit, shadow, dataset);
* :mod:`~reflex_core.plugin.kit.latency`: duration parsing and rolling latency percentiles;
* :mod:`~reflex_core.plugin.kit.collectors`: Prometheus collectors on the server's registry;
* :mod:`~reflex_core.plugin.kit.observation_age`: how old an observation is when it is served;
* :mod:`~reflex_core.plugin.kit.overload`: back-off turns for refused callers, a log that does
  not grow with the refusals;
* :mod:`~reflex_core.plugin.kit.websocket`: a transport's close with the closing handshake,
  so the frames sent just before it reach the client.
"""
