"""Simulate: SGD, heavy-ball momentum and GD on a Loss, many replicas at once, reproducibly.

The stage after :mod:`noether_sym.theory`: what the theory predicts, this measures
(:func:`~noether_sym.simulate`, THEORY (E1)); :mod:`noether_sym.check` compares the two.

Modules
-------
``_run``
    :func:`simulate` and the step loop: data streams per replica, chunks of replicas,
    divergence handling, records.
``_options``
    :class:`SimulationOptions`: a run's settings, validated once (shared with ``compare``).
``_fused``
    The fused compiled backend (``backend="numba"``): one generated numba kernel runs every
    step of every replica, data drawn inside from counter-based Philox streams.
``_kernels``
    The batch gradient of one step: compiled code with the data-only terms hoisted out,
    the families' matrix-form gradient, or the exact mean gradient for GD.
``_observables``
    The charges θᵀAθ and orbit coordinates of generators, evaluated on (replicas, n) arrays.
``_schedule``
    Learning-rate schedules (:class:`Warmup`, :class:`StepDecay`, :class:`Cosine`).
``_result``
    :class:`SimulationResult`: final θ, divergence flags, the recorded observables.
"""
