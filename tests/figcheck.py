"""Checks on rendered figures: every visible axes labelled, no two text boxes overlapping.

Text extents come from matplotlib's renderer (``Text.get_window_extent``) after a draw.
"""

from __future__ import annotations

from matplotlib.figure import Figure


def _texts(fig: Figure):
    out = []
    for t in fig.texts:
        out.append(("figure text", t))
    for leg in fig.legends:
        out += [("figure legend", t) for t in leg.get_texts()]
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        out += [(f"axes {i} title", t) for t in (ax.title, ax._left_title, ax._right_title)]
        out += [(f"axes {i} xlabel", ax.xaxis.label), (f"axes {i} ylabel", ax.yaxis.label)]
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if lo - 1e-9 * abs(hi - lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi - lo):
                    out.append((f"axes {i} {name}tick", tick.label1))
        out += [(f"axes {i} text", t) for t in ax.texts]
        if ax.get_legend() is not None:
            out += [(f"axes {i} legend", t) for t in ax.get_legend().get_texts()]
    return [(n, t) for n, t in out if t.get_visible() and t.get_text().strip()]


def overlapping_texts(fig: Figure, tol: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of visible text boxes (``'where: text'``) that overlap by more than ``tol`` px."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [(f"{n}: {t.get_text()!r}", t.get_window_extent(r)) for n, t in _texts(fig)]
    bad = []
    for i in range(len(boxes)):
        a = boxes[i][1]
        for j in range(i + 1, len(boxes)):
            b = boxes[j][1]
            w = min(a.x1, b.x1) - max(a.x0, b.x0)
            h = min(a.y1, b.y1) - max(a.y0, b.y0)
            if w > tol and h > tol:
                bad.append((boxes[i][0], boxes[j][0]))
    return bad


def check_figure(fig: Figure) -> None:
    """Every visible axes has an x and a y label, no text overlaps another, and all text
    lies inside the figure."""
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        shared = ax.get_shared_x_axes().get_siblings(ax)
        assert any(a.get_xlabel().strip() for a in shared), \
            f"axes {i} ({ax.get_title()!r}) has no x label"
        shared_y = ax.get_shared_y_axes().get_siblings(ax)
        assert any(a.get_ylabel().strip() for a in shared_y) or any(
            t.get_text() for t in ax.get_yticklabels()), f"axes {i} has no y label"
    bad = overlapping_texts(fig)
    assert not bad, f"overlapping text: {bad[:5]}"
    fig.canvas.draw()
    W, H = fig.bbox.width, fig.bbox.height
    r = fig.canvas.get_renderer()
    for n, t in _texts(fig):
        e = t.get_window_extent(r)
        assert e.x0 >= -2 and e.y0 >= -2 and e.x1 <= W + 2 and e.y1 <= H + 2, \
            f"{n} {t.get_text()!r} outside the figure"
