"""Check: theory against measurement, on one loss or the whole catalog, and at scale.

The top stage under the command line: it predicts with ``theory/``, measures with
``simulate/`` and writes its reports with ``report/``.

Modules
-------
``_compare``
    :func:`~noether_sym.compare`: a prediction against simulated SGD, with error bars and
    the η → 0 limit (Richardson over η, 2η, 4η).
``_verify``
    :func:`~noether_sym.verify`: every theorem check on every catalog family (the main job,
    ``noether-sym verify``), its report directory and figures; ``_verify_base`` holds the
    verdict and a family's case, ``_verify_flow`` the Noether-flow check (E22).
``_sweep``, ``_sweep_spec``, ``_sweep_task``, ``_sweep_store``
    :func:`~noether_sym.sweep`: grids of simulations on Dask (the spec and its tasks, one
    task's run, the Parquet shards and manifest, resume).
``_planted``, ``_strategies``, ``_identities``
    Planted-symmetry losses, hypothesis strategies and theorem checks, public as
    :mod:`noether_sym.testing`.
"""
