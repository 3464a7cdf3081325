"""Symmetry stage: every exponential symmetry of a loss and its Noether charges (THEORY §2, §3, §8).

Modules
-------
``_finder``
    :func:`find_symmetries`: route choice (exact, dense, structured) and confirmation.
``_exact_route``
    The exact route: the linear system of (E4) over QQ.
``_numeric``
    The dense route: sampled equations, SVD null spaces with a gap certificate, polishing.
``_structured``
    The structured route for large models (gradient null spaces, Hessian actions).
``_canonical``
    Reduced row echelon form and rational rounding of a basis.
``_refine``
    Exact (or high-precision) refinement of numeric candidates: no denominator bound.
``_laws``
    :func:`conservation_laws`: all conservation laws of gradient flow (Lie-bracket rank).
``_charges``
    Charges θᵀAθ, their classes, generic rank, :func:`confirm_conservation`.
``_approximate``
    :func:`approximate_symmetries`: generators that hold up to a measured breaking near a point.
``_result``
    :class:`Symmetries` and :class:`Candidate`.
"""
