"""Report: turn what the theory derives about a loss into things a reader checks or reads.

The report stage sits above ``theory`` and ``simulate`` and below ``check`` and ``cli``; it
computes nothing new about SGD, it assembles, proves and renders.

Modules
-------
``_latex``
    ``to_latex`` (one dispatcher for every result type) and the LaTeX document writer
    (``document``, ``derivation_document``). Each result type's own ``*_latex`` renderer
    lives next to the result in its stage and is re-exported here.
``_derive``
    ``derive``: the whole pipeline loss -> symmetries -> charges -> drift laws ->
    equilibria -> sharpness for one loss, as one ``Derivation`` object (JSON and LaTeX).
``_prove``
    machine-checked derivations of the equations of docs/theory.md: ``Proof``/``Step``/``ProofCheck``,
    the building blocks proof files use (``zero``, ``sign``, ``limit``, ``generic_vector``,
    ``symmetric``...), discovery of the ``proofs/`` folder and the proofs document.
``_plot``
    ``plot_charges``: charge trajectories of a simulation against the predicted
    equilibrium (matplotlib, an optional extra).

Number and symbol formatting shared by all renderers is in ``noether_sym._printing``.
"""
