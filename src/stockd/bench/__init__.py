"""Benchmarks: measure, never assert. Results go to docs/benchmarks.md.

``scripts/bench`` (``python -m stockd.bench``, see ``__main__``) runs them:

``throughput``  durable reservations/s in process, every engine × strategy (``throughput.py``)
``flash-sale``  many buyers, few units: the outcome checked, the sell-out timed (``flash_sale.py``)
``http``        a server over HTTP, against a bare ASGI app in the same run (``http.py``)
``plot``        the figure for docs/benchmarks.md from ``--json`` results (``plot.py``)

``engines.py`` opens an engine on a fresh database; ``stats.py`` has the percentiles.
"""
