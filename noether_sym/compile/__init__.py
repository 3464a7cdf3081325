"""Compile: SymPy losses turned into fast NumPy code and exact polynomial arithmetic.

The second stage of the pipeline (after :mod:`noether_sym.loss`): everything that evaluates
a loss, numerically or exactly, is built here once per Loss and cached on it.

Modules
-------
``_graph``
    The expression DAG: SymPy expressions as shared nodes (structural hashing), with the
    kink arguments of ``Max``/``Abs``/``Heaviside``/``Piecewise`` recorded.
``_codegen``
    NumPy source from the DAG: forward values, reverse-mode gradients, kink arguments
    (:func:`compile_graph`, one emitter per node operation).
``_exact``
    Exact arithmetic over QQ on the DAG: the directional derivative along a candidate
    generator, and the loss as a rational function when it is one.
``_compiled``
    :class:`CompiledLoss`: per-sample loss, gradient, kinks and complex-step Hessian-vector
    products of a Loss, batched over replicas and samples.
``_confirm``
    Exact confirmation that a candidate generator is a symmetry of the loss (THEORY E3, E4).
``_matrix_grads``
    Matrix-form (matmul) gradients of the feed-forward families (``loss.fast_grad``).
"""
