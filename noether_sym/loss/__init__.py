"""Loss stage: the user's loss as a validated object, the input of every later stage.

Modules
-------
``_loss``
    :class:`Loss` (expression, ordered parameters and blocks, data model, constants, the
    real copy), :func:`vector` / :func:`matrix` parameter blocks, strict number conversion.
``_generators``
    The one reader of user-given generator matrices (:func:`as_generator`,
    :func:`as_generators`): exact SymPy matrices, sparse above ``SPARSE_ABOVE``.
``_parse``
    :func:`parse_expression`: whitelisted parsing of textual losses (never ``eval``).
"""
