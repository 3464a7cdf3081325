"""Report: figures of simulations -- Noether charge trajectories against the predicted equilibrium.

matplotlib is a dependency (``noether-sym verify`` writes figures); it is imported when a
figure is drawn, through the object-oriented API only (no pyplot global state, no change
of the user's backend).

:func:`plot_charges` draws, for each Noether charge (or any other observable the
simulation recorded), the mean over replicas with a ±1 standard deviation band, and the
predicted equilibrium value as a dashed line, so that a figure shows at a glance whether
SGD settles where the theory says. At most eight curves are drawn per figure.
"""


from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ['plot_charges']


_MAX_CURVES = 8


def _figure_class() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib, a dependency of noether_sym that is not installed: pip install matplotlib"
        ) from None
    return Figure, FigureCanvasAgg


def plot_charges(
    result: Any,
    predicted: Any = None,
    path: str | os.PathLike | None = None,
    *,
    observable: str = "charges",
    labels: list[str] | None = None,
    title: str | None = None,
) -> Any:
    """Charge trajectories of a simulation: mean over replicas ± one standard deviation.

    Parameters
    ----------
    result
        A :class:`~noether_sym.SimulationResult` that recorded ``observable``.
    predicted
        Optional predicted equilibrium values, one per charge (or one number for all):
        drawn as dashed horizontal lines. ``None`` entries are skipped.
    path
        File to write (format from the extension, e.g. ``.png``, ``.pdf``); if None the
        figure is returned without saving.
    observable
        ``"charges"`` (default), ``"orbit"``, ``"norm2"`` or any recorded observable.
    labels
        Curve labels (default ``C_1, C_2, ...``).
    title
        Figure title (default: the loss name and the learning rate).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    >>> loss = ns.Loss((u * w * x - (x + e)) ** 2, [u, w])
    >>> A = sp.diag(1, -1)
    >>> res = ns.simulate(loss, [2, 0.5], lr=0.01, batch_size=1, steps=400, replicas=16,
    ...                   record=["charges"], every=20, generators=[A])
    >>> fig = ns.plot_charges(res, predicted=[0.0])   # doctest: +SKIP
    """
    Figure, Canvas = _figure_class()
    data = np.asarray(result[observable], dtype=float)
    if data.ndim == 2:
        data = data[:, :, None]
    t = np.asarray(result.times)
    k = min(data.shape[2], _MAX_CURVES)
    if predicted is not None:
        pred = np.atleast_1d(np.asarray(predicted, dtype=object))
        if pred.size == 1 and k > 1:
            pred = np.repeat(pred, k)
    else:
        pred = None
    fig = Figure(figsize=(7.0, 4.2))
    Canvas(fig)
    ax = fig.add_subplot(1, 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        alive = np.isfinite(data)
        cnt = np.maximum(alive.sum(axis=1), 1)
        mean = np.where(alive, data, 0.0).sum(axis=1) / cnt
        dev = np.where(alive, data - mean[:, None, :], 0.0)
        std = np.sqrt((dev * dev).sum(axis=1) / np.maximum(cnt - 1, 1))
    for i in range(k):
        label = labels[i] if labels and i < len(labels) else f"C_{i + 1}" if observable == "charges" else f"{observable}[{i}]"
        (line,) = ax.plot(t, mean[:, i], lw=1.5, label=label)
        ax.fill_between(t, mean[:, i] - std[:, i], mean[:, i] + std[:, i], color=line.get_color(), alpha=0.2, lw=0)
        if pred is not None and i < len(pred) and pred[i] is not None and np.isfinite(float(pred[i])):
            ax.axhline(float(pred[i]), color=line.get_color(), ls="--", lw=1.0)
    if data.shape[2] > k:
        ax.text(0.99, 0.01, f"first {k} of {data.shape[2]} shown", transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
    settings = getattr(result, "settings", {}) or {}
    ax.set_xlabel("step")
    ax.set_ylabel(observable)
    ax.set_title(
        title
        or f"{settings.get('loss', '')}: {settings.get('optimizer', 'sgd')}, lr={settings.get('lr')}, "
        f"batch={settings.get('batch_size')}, {result.replicas} replicas (mean ± sd)"
        + ("; dashed: predicted" if pred is not None else ""),
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig
