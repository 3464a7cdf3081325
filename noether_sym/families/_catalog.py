"""Catalog: named loss families with a data model, a default start and simulation settings.

A :class:`Family` is only a recipe for an ordinary :class:`~noether_sym.Loss`: ``build``
returns the Loss (with its data model attached), ``theta0`` a default start, ``settings``
the default simulation options. Nothing downstream knows which family a Loss came from.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from ..loss._loss import Loss

__all__ = ["Family", "CATALOG", "get", "build", "names", "register"]


@dataclass(frozen=True)
class Family:
    """One catalog entry.

    Attributes
    ----------
    name
        Command-line name, e.g. ``"rescaling"``.
    description
        One line for ``noether-sym families``.
    section
        The section of docs/theory.md it illustrates, e.g. ``"7.1"``.
    builder
        ``builder(**options) -> Loss`` (data model attached).
    options
        Default options of ``builder``.
    start
        ``start(loss, rng) -> np.ndarray`` in ``loss.params`` order: the default start.
    settings
        Default simulation options (``lr``, ``batch_size``, ``steps``, ``replicas``...).
    theorems
        THEORY tags that apply, e.g. ``("E4", "E10", "E17")``.
    extra
        Anything else the checks need, e.g. ``n_generators(**options) -> int`` (the theory's
        dimension of 𝒜(ℓ)) or ``data_model(**options)`` (exact Σ_x, Σ_ε, teacher for (E21)).
    """

    name: str
    description: str
    section: str
    builder: Callable[..., Loss]
    options: Mapping[str, Any] = field(default_factory=dict)
    start: Callable[[Loss, np.random.Generator], np.ndarray] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    theorems: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def build(self, **options: Any) -> Loss:
        """The Loss for ``options`` (merged over the defaults)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InvalidArgumentError(
                f"family {self.name!r} has no option(s) {', '.join(unknown)}; its options are "
                f"{', '.join(sorted(self.options)) or '(none)'}"
            )
        return self.builder(**{**self.options, **options})

    def theta0(self, loss: Loss | None = None, *, seed: int = 0) -> np.ndarray:
        """The default start for ``loss`` (default: the default build), seeded."""
        loss = self.build() if loss is None else loss
        rng = np.random.default_rng(seed)
        if self.start is None:
            return rng.standard_normal(loss.n) * 0.5
        return np.asarray(self.start(loss, rng), dtype=float)


#: name -> Family, in registration order
CATALOG: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to :data:`CATALOG` (names are unique)."""
    if family.name in CATALOG:
        raise InvalidArgumentError(f"a family named {family.name!r} is already registered")
    CATALOG[family.name] = family
    return family


def names() -> list[str]:
    """Catalog names, sorted."""
    return sorted(CATALOG)


def get(name: str) -> Family:
    """The :class:`Family` called ``name``; otherwise an error naming the closest names.

    Examples
    --------
    >>> from noether_sym import families
    >>> families.get("resacling")
    Traceback (most recent call last):
    ...
    noether_sym._errors.InvalidArgumentError: no family 'resacling'; did you mean 'rescaling'? (noether-sym families lists all)
    """
    try:
        return CATALOG[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), names(), n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "? (noether-sym families lists all)"
        else:
            hint = f"the catalog has: {', '.join(names())}"
        raise InvalidArgumentError(f"no family {name!r}; {hint}") from None


def build(name: str, **options: Any) -> Loss:
    """``get(name).build(**options)``."""
    return get(name).build(**options)
