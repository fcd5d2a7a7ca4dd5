"""The read-only web view (``run.py web``): server-rendered Chinese pages over
the store, login by a mailed one-time code, ``/healthz`` and ``/metrics``.

One module per concept: ``app`` (routes, server), ``auth`` (codes, sessions),
``access`` (who sees which record), ``pages`` (what each page shows),
``health`` (``/healthz`` and the daemon's stall alerts), ``metrics``
(``/metrics``). Nothing here writes a record: staff still act by mail.
"""
