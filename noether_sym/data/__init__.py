"""Data stage: the data model of a loss and exact expectations over it (THEORY §1).

Modules
-------
``_model``
    :func:`minibatch_factor`, :func:`attach_data`, :func:`gaussian_linear_teacher` and the
    exact reading of points θ and constant values.
``_polynomial``
    The sparse polynomial builder and moment sources (random symbols, finite datasets).
``_moments``
    :func:`moments` (∇L, M, Σ exactly or by Monte Carlo), :func:`expectation`,
    :func:`compiled_moments`.
``_piecewise``
    :func:`cone_moments`, :func:`cone_hessian`, :func:`cone_derivatives`: deterministic
    E[ℓ], ∇L, M, Σ, the population Hessian and ∇Tr(HΛ) of piecewise-linear units (ReLU,
    leaky ReLU, Abs) on Gaussian data, by cubature over the cones of constant activation
    pattern; ``moments``, the gradient flow Φ(θ₀) and the Noether flow's population use it.
``_sample``
    Samplers that draw data (random symbols) or index a dataset for simulation.
"""
