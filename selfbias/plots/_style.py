# Over 600 lines: the one figure style (palettes, labels, sizes, saving), kept together so every figure matches.
"""Private style helpers of :mod:`selfbias.plots`: palette, sizes, fonts, labels, saving.

One style for every figure:

* colours from the Okabe & Ito (2008) colour-blind-safe palette, with fixed meanings (a candidate
  source, correct vs wrong, self vs other) so a colour means the same thing in every figure;
* figure widths of a two-column paper: :data:`COLUMN_WIDTH` (3.3 in) and :data:`PAGE_WIDTH`
  (6.9 in); fonts of 7-8 pt (legible at that width, never below 7 pt);
* DejaVu Sans (shipped with matplotlib, so no font lookup ever fails), TrueType fonts embedded
  in PDFs (``pdf.fonttype`` 42: text stays editable);
* :func:`save` writes vector PDF and 300-dpi PNG.
"""

from __future__ import annotations

import contextlib
import functools
import os
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

# --------------------------------------------------------------------------------------------
# palette (Okabe, M. & Ito, K. 2008, "Color Universal Design")
# --------------------------------------------------------------------------------------------

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "grey": "#999999",
}
#: Series colours (e.g. judges) in order: yellow left out (too light on white), vermillion last
#: (it marks own answers and warnings).
CYCLE = tuple(
    OKABE_ITO[k] for k in ("blue", "bluish_green", "reddish_purple", "black", "orange", "sky_blue", "vermillion")
)

#: Candidate source groups (see :func:`source_group`) in display order, and their colours.
SOURCE_ORDER = ("own greedy", "own sample", "other model", "reference", "distractor", "perturbation")
SOURCE_COLORS = {
    "own greedy": OKABE_ITO["vermillion"],
    "own sample": OKABE_ITO["orange"],
    "other model": OKABE_ITO["blue"],
    "reference": OKABE_ITO["bluish_green"],
    "distractor": OKABE_ITO["reddish_purple"],
    "perturbation": OKABE_ITO["sky_blue"],
}
#: Author groups of a candidate relative to the judge (see :func:`author_group`).
AUTHOR_ORDER = ("self", "other model", "dataset", "perturbation")

CORRECT_COLOR = OKABE_ITO["blue"]
WRONG_COLOR = OKABE_ITO["orange"]
SELF_COLOR = OKABE_ITO["vermillion"]
OTHER_COLOR = OKABE_ITO["blue"]
NEUTRAL_COLOR = OKABE_ITO["grey"]
#: Warnings (degenerate judge) are written in vermillion, the palette's red.
ALERT_COLOR = OKABE_ITO["vermillion"]

#: Judge modes in display order, with their markers and printed names.
MODE_ORDER = ("isolated", "own_samples", "alternatives", "critique")
MODE_MARKERS = {"isolated": "o", "own_samples": "s", "alternatives": "^", "critique": "D"}
MODE_LABELS = {"isolated": "isolated", "own_samples": "own samples", "alternatives": "alternatives",
               "critique": "critique", "pairwise": "pairwise"}

# --------------------------------------------------------------------------------------------
# sizes and fonts
# --------------------------------------------------------------------------------------------

COLUMN_WIDTH = 3.3  # inches, one column of a two-column paper
PAGE_WIDTH = 6.9  # inches, both columns
FONT_SIZE = 7.5
SMALL_FONT_SIZE = 7.0  # the smallest text in any figure
TITLE_FONT_SIZE = 8.0
PNG_DPI = 300

RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": FONT_SIZE,
    "axes.titlesize": TITLE_FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": SMALL_FONT_SIZE,
    "ytick.labelsize": SMALL_FONT_SIZE,
    "legend.fontsize": SMALL_FONT_SIZE,
    "legend.title_fontsize": SMALL_FONT_SIZE,
    "figure.titlesize": TITLE_FONT_SIZE,
    "figure.labelsize": FONT_SIZE,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=list(CYCLE)),
    "axes.titlepad": 4.0,
    "axes.labelpad": 2.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.major.pad": 2.0,
    "ytick.major.pad": 2.0,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "errorbar.capsize": 1.5,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "legend.borderaxespad": 0.3,
    "legend.columnspacing": 1.0,
    "legend.handletextpad": 0.4,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "figure.constrained_layout.hspace": 0.04,
    "figure.constrained_layout.wspace": 0.04,
}


def context() -> contextlib.AbstractContextManager:
    """The package style as a temporary rcParams context (figures drawn inside keep it)."""
    return mpl.rc_context(RC)


def width_for(n_columns: int) -> float:
    """Figure width for ``n_columns`` side-by-side panels: one column for 1 panel, else the page."""
    return COLUMN_WIDTH if n_columns <= 1 else PAGE_WIDTH


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **subplots_kw):
    """A constrained-layout Figure (not registered with pyplot) and a 2-D array of its Axes."""
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots_kw)
    return fig, axes


def finish(ax, grid: str | None = None) -> None:
    """Tick sizes that survive outside the style context, light grid lines on ``grid`` axes."""
    ax.tick_params(labelsize=SMALL_FONT_SIZE, width=0.6, length=2.5, pad=2.0)
    if grid:
        ax.grid(axis=grid, color="#dddddd", linewidth=0.5, zorder=0)
        ax.set_axisbelow(True)


def wrap(text: str, width: int = 46, max_lines: int | None = 3) -> str:
    """``text`` wrapped to ``width`` characters; with ``max_lines``, cut to that many lines with an
    ellipsis (``None``: never cut, for warnings, which are shown in full)."""
    lines = textwrap.wrap(str(text), width=width, break_on_hyphens=False) or [""]
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(width - 1, 1)].rstrip() + "…"
    return "\n".join(lines)


def shorten(text: str, limit: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def text_width_in(text: str, fontsize: float = SMALL_FONT_SIZE, bold: bool = False) -> float:
    """Width in inches of one line of ``text`` in the figure font (measured, not estimated)."""
    from matplotlib.font_manager import FontProperties

    props = FontProperties(family=RC["font.sans-serif"][0], size=fontsize, weight="bold" if bold else "normal")
    # hinting makes text a few per cent wider at screen resolution than at print resolution:
    # measure at both and keep the wider
    return max(r.get_text_width_height_descent(str(text), props, ismath=False)[0] / r.dpi for r in _renderers())


@functools.lru_cache(maxsize=1)
def _renderers():
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(10, 10, 100), RendererAgg(10, 10, PNG_DPI)


def wrap_to(text: str, width_in: float, fontsize: float = SMALL_FONT_SIZE, bold: bool = False) -> str:
    """``text`` wrapped (at spaces, in full) so that no line is wider than ``width_in`` inches;
    existing line breaks are kept; a single word wider than the width keeps its own line."""
    out = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and text_width_in(trial, fontsize, bold) > width_in:
                out.append(line)
                line = word
            else:
                line = trial
        out.append(line)
    return "\n".join(out)


def fit_labels(fig: Figure) -> None:
    """Wrap every panel's title and x label to the panel's width and its y label to its height,
    so that neighbouring labels never run into each other (call once the panels are drawn).
    The panels' sizes are those of a layout pass run here (constrained layout does not stop
    labels wider than their panel from running into the next one)."""
    fig.draw_without_rendering()
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        width_in, height_in = panel_size_in(ax)
        title = ax.title
        if title.get_text():
            title.set_text(wrap_to(title.get_text(), width_in * 0.98, title.get_fontsize()))
        for label, room in ((ax.xaxis.label, width_in), (ax.yaxis.label, height_in)):
            if label.get_text():
                label.set_text(wrap_to(label.get_text(), room * 0.95, label.get_fontsize()))


def chars_for(width_in: float, bold: bool = True, fontsize: float = SMALL_FONT_SIZE) -> int:
    """Characters of ``fontsize`` text that fit in ``width_in`` inches (DejaVu Sans, a typical mix
    of letters; wide capitals fit fewer)."""
    per_char = fontsize * (0.64 if bold else 0.58) / 72.0
    return max(12, int(width_in / per_char))


def _points_in_axes(ax) -> np.ndarray:
    """The drawn data of ``ax`` as points in axes coordinates (lines densified), for placing notes."""
    to_axes = ax.transAxes.inverted()
    chunks = []

    def add(xy, transform, densify: bool) -> None:
        xy = np.asarray(xy, float).reshape(-1, 2)
        xy = xy[np.isfinite(xy).all(axis=1)]
        if not len(xy):
            return
        pts = to_axes.transform(transform.transform(xy))
        if densify and len(pts) > 1:
            t = np.linspace(0.0, 1.0, 12)[:, None, None]
            pts = (pts[:-1][None] * (1 - t) + pts[1:][None] * t).reshape(-1, 2)
        chunks.append(pts)

    for line in ax.lines:
        add(line.get_xydata(), line.get_transform(), densify=line.get_linestyle() not in ("None", "none", ""))
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), float)
        if offsets.size and np.any(offsets):
            add(offsets, coll.get_offset_transform(), densify=False)
        else:
            for path in coll.get_paths():
                add(path.vertices, coll.get_transform(), densify=True)
    for patch in ax.patches:
        add(patch.get_path().vertices, patch.get_transform(), densify=True)
    return np.vstack(chunks) if chunks else np.empty((0, 2))


_CORNERS = ("upper left", "upper right", "lower left", "lower right")


def _text_size_in(text: str, fontsize: float, bold: bool) -> tuple[float, float]:
    """Approximate (width, height) in inches of a text box (DejaVu Sans, with its padding)."""
    lines = str(text).split("\n") or [""]
    width = max(len(line) for line in lines) * fontsize * (0.64 if bold else 0.58) / 72.0
    return width + 0.1, len(lines) * fontsize * 1.25 / 72.0 + 0.1


def panel_size_in(ax) -> tuple[float, float]:
    """(width, height) of a panel in inches (as of the last layout pass; before any, its grid cell)."""
    fig = ax.get_figure()
    pos = ax.get_position()
    if fig is None:
        return COLUMN_WIDTH, COLUMN_WIDTH
    return max(pos.width * fig.get_figwidth(), 0.1), max(pos.height * fig.get_figheight(), 0.1)


def _text_boxes(ax) -> list[tuple[float, float, float, float]]:
    """Boxes (x0, y0, x1, y1, in axes fractions) of the texts already placed in axes coordinates."""
    w_in, h_in = panel_size_in(ax)
    boxes = []
    for t in ax.texts:
        if t.get_transform() != ax.transAxes or not t.get_text():
            continue
        tw, th = _text_size_in(t.get_text(), t.get_fontsize(), t.get_fontweight() in ("bold", 700))
        tw, th = tw / w_in, th / h_in
        x, y = t.get_position()
        x0 = {"left": x, "center": x - tw / 2}.get(t.get_ha(), x - tw)
        y0 = {"bottom": y, "center": y - th / 2, "baseline": y}.get(t.get_va(), y - th)
        boxes.append((x0, y0, x0 + tw, y0 + th))
    return boxes


def _emptiest_corner(ax, width: float, height: float) -> str:
    """The corner of ``ax`` whose ``width`` x ``height`` box (axes fractions) covers the fewest data,
    never one that covers a text already in the panel (when another corner is free of texts)."""
    pts = _points_in_axes(ax)
    texts = _text_boxes(ax)
    best, best_count = _CORNERS[0], None
    for corner in _CORNERS:
        x0 = 0.0 if corner.endswith("left") else 1.0 - width
        y0 = 1.0 - height if corner.startswith("upper") else 0.0
        inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x0 + width) & (pts[:, 1] >= y0) & (pts[:, 1] <= y0 + height)
        hits = sum(bx0 < x0 + width and x0 < bx1 and by0 < y0 + height and y0 < by1
                   for bx0, by0, bx1, by1 in texts)
        count = int(inside.sum()) + 10**9 * hits
        if best_count is None or count < best_count:
            best, best_count = corner, count
    return best


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


class Footnotes:
    """The numbered notes of one figure (degenerate-judge warnings).

    A panel carries a short mark (``degenerate judge¹``); the full text goes under the figure
    (:meth:`place`), wrapped, never cut. The same text gets the same number."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.texts)

    def mark(self, text: str) -> str:
        """The superscript number of ``text`` (added when new)."""
        if text not in self.texts:
            self.texts.append(text)
        return str(self.texts.index(text) + 1).translate(_SUPERSCRIPTS)

    def lines(self) -> list[str]:
        return [f"{str(k + 1).translate(_SUPERSCRIPTS)} {t}" for k, t in enumerate(self.texts)]

    def place(self, fig: Figure, where: str = "bottom") -> None:
        if self.texts:
            figure_note(fig, self.lines(), where=where)


def note_degenerate(ax, text: str, *, loc: str = "auto") -> None:
    """Label a panel whose verdicts come from a degenerate judge: a red note and a red frame.

    ``text`` is short (``degenerate judge¹``, the reasons go into the figure's
    :class:`Footnotes`); it is wrapped to the panel's width, never cut, placed in the corner that
    covers the least data and no other text of the panel (``loc="auto"``) or in ``loc`` ("upper
    left", ...), and kept out of the layout computation. Call it after the panel's data, texts
    and limits are set.
    """
    width_in, height_in = panel_size_in(ax)
    body = wrap_to(text, width_in * 0.9, SMALL_FONT_SIZE, bold=True)
    if loc == "auto":
        box_w, box_h = _text_size_in(body, SMALL_FONT_SIZE, bold=True)
        loc = _emptiest_corner(ax, min(1.0, box_w / width_in), min(1.0, box_h / height_in))
    x, ha = (0.02, "left") if loc.endswith("left") else (0.98, "right")
    y, va = (0.98, "top") if loc.startswith("upper") else (0.02, "bottom")
    note = ax.text(
        x, y, body, transform=ax.transAxes, ha=ha, va=va,
        color=ALERT_COLOR, fontsize=SMALL_FONT_SIZE, fontweight="bold", zorder=20,
        bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": ALERT_COLOR,
              "linewidth": 0.6, "alpha": 0.9},
    )
    note.set_in_layout(False)
    for spine in ax.spines.values():
        spine.set_edgecolor(ALERT_COLOR)


def figure_note(fig: Figure, text: str | Sequence[str], *, max_lines: int | None = None,
                where: str = "bottom") -> None:
    """A red note under (``where="bottom"``, the figure's supxlabel) or above (``"top"``, its
    suptitle) the whole figure, for warnings about degenerate judges. It takes part in the
    layout, so it never overlaps the panels, and the figure grows by its height, so the panels
    keep theirs. Each string of ``text`` starts a new line and is wrapped to the figure's width,
    in full unless ``max_lines`` is given."""
    parts = [text] if isinstance(text, str) else list(text)
    lines = [wrap_to(t, fig.get_figwidth() * 0.96, SMALL_FONT_SIZE, bold=True) for t in parts]
    if max_lines is not None:
        lines = [wrap("\n".join(lines).replace("\n", " "), chars_for(fig.get_figwidth() * 0.95), max_lines)]
    body = "\n".join(lines)
    place = fig.supxlabel if where == "bottom" else fig.suptitle
    place(body, x=0.01, ha="left", color=ALERT_COLOR, fontsize=SMALL_FONT_SIZE, fontweight="bold")
    fig.set_figheight(fig.get_figheight() + (body.count("\n") + 1) * SMALL_FONT_SIZE * 1.2 / 72.0 + 0.04)


def legend_and_notes(fig: Figure, handles: Sequence, notes: Footnotes | None = None, **legend_kw) -> None:
    """The figure's legend and footnotes without overlap.

    The legend sits under the panels; with footnotes it moves above them and the footnotes take
    the bottom (constrained layout does not stack an outside legend and a supxlabel)."""
    if handles:
        loc = "outside upper center" if notes else "outside lower center"
        fig.legend(handles=handles, loc=loc, **legend_kw)
    if notes:
        notes.place(fig)


def text_color_on(rgba) -> str:
    """Black or white, whichever reads better on a fill colour."""
    r, g, b = mpl.colors.to_rgb(rgba)
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 else "white"


# --------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------

_MODEL_SOURCES = {"own_greedy", "own_sample", "other_model"}


def _column(df: pd.DataFrame, name: str, default) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series(default, index=df.index)


def source_group(df: pd.DataFrame) -> pd.Series:
    """Display group of each candidate relative to its judge.

    Answers generated by a model are ``own greedy`` / ``own sample`` when the judge authored them
    (``self_authored``) and ``other model`` otherwise; dataset answers keep their source
    (``reference``, ``distractor``, ``perturbation``); anything else keeps its raw source name.
    """
    source = _column(df, "source", "unknown").fillna("unknown").astype(str).to_numpy()
    self_ = _column(df, "self_authored", False).fillna(False).astype(bool).to_numpy()
    model_made = np.isin(source, list(_MODEL_SOURCES))
    out = np.where(model_made & ~self_, "other model", np.char.replace(source.astype(str), "_", " "))
    out = np.where(model_made & self_, np.where(source == "own_greedy", "own greedy", "own sample"), out)
    return pd.Series(out, index=df.index, dtype=object)


def author_group(df: pd.DataFrame) -> pd.Series:
    """Author of each candidate relative to its judge: ``self`` (the judge wrote it), ``other
    model``, ``perturbation`` (a perturbed answer) or ``dataset`` (reference, distractor)."""
    source = _column(df, "source", "unknown").fillna("unknown").astype(str).to_numpy()
    self_ = _column(df, "self_authored", False).fillna(False).astype(bool).to_numpy()
    out = np.where(np.isin(source, list(_MODEL_SOURCES)), "other model",
                   np.where(source == "perturbation", "perturbation", "dataset"))
    out = np.where(self_, "self", out)
    return pd.Series(out, index=df.index, dtype=object)


def ordered(values: Iterable, preferred: Sequence[str]) -> list:
    """Distinct ``values``: those in ``preferred`` first in that order, the rest sorted."""
    present = list(dict.fromkeys(str(v) for v in values))
    head = [p for p in preferred if p in present]
    return head + sorted(v for v in present if v not in head)


def mode_label(mode: str) -> str:
    return MODE_LABELS.get(mode, str(mode).replace("_", " "))


def source_color(group: str) -> str:
    return SOURCE_COLORS.get(group, NEUTRAL_COLOR)


def series_colors(names: Sequence[str]) -> dict[str, str]:
    return {n: CYCLE[i % len(CYCLE)] for i, n in enumerate(names)}


# --------------------------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-unicode table used by byte-level BPE tokenizers."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    codes = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, codes)}


_WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "\\r"}
_SP_BYTES = {"<0x0A>": "↵", "<0x09>": "⇥", "<0x20>": "␣", "<0x0D>": "\\r"}


def _show_whitespace(s: str) -> str:
    out = []
    for ch in s:
        if ch in _WHITESPACE:
            out.append(_WHITESPACE[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def readable_tokens(tokens: Sequence) -> list[str]:
    """Tokens as printable labels: spaces as ``␣``, newlines as ``↵``, tabs as ``⇥``.

    Byte-level BPE tokens (GPT-2, Llama 3, SmolLM: ``Ġ`` = space, ``Ċ`` = newline) are decoded
    byte-wise when every token consists of byte-alphabet characters and at least one uses the
    remapped range; a character split across tokens shows as ``\\xNN`` escapes. SentencePiece
    tokens (Gemma, Llama 2: ``▁`` = space, ``<0x0A>`` = newline) are mapped directly. Characters the
    figure font cannot draw are written as ``U+XXXX``.

    Parameters
    ----------
    tokens : sequence of str
        Token strings as the tokenizer spells them (None counts as empty).

    Returns
    -------
    list of str
        One label per token (``∅`` for an empty token).
    """
    toks = ["" if t is None else str(t) for t in tokens]
    decoder = _byte_decoder()
    byte_level = (
        bool(toks)
        and all(all(ch in decoder for ch in t) for t in toks)
        and any(any(0x100 <= ord(ch) <= 0x143 for ch in t) for t in toks)
    )
    out = []
    for t in toks:
        if byte_level:
            s = bytes(decoder[ch] for ch in t).decode("utf-8", errors="backslashreplace")
        else:
            s = _SP_BYTES.get(t, t).replace("▁", " ")
        s = _show_whitespace(s)
        out.append(renderable(s) if s else "∅")
    return out


@functools.lru_cache(maxsize=1)
def _font():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    return FT2Font(font_manager.findfont(font_manager.FontProperties(family=RC["font.sans-serif"][0])))


@functools.lru_cache(maxsize=4096)
def _has_glyph(ch: str) -> bool:
    return _font().get_char_index(ord(ch)) != 0


def renderable(text: str) -> str:
    """``text`` with the characters the figure font lacks replaced by ``U+XXXX`` (no glyph warnings)."""
    return "".join(ch if ch in "\n" or _has_glyph(ch) else f"U+{ord(ch):04X}" for ch in str(text))


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------


def save(
    fig: Figure,
    path_stem: str | os.PathLike,
    formats: Sequence[str] = ("pdf", "png"),
    *,
    dpi: int = PNG_DPI,
) -> list[Path]:
    """Write ``fig`` as ``<path_stem>.<format>`` for each format; return the written paths.

    PDF and SVG are vector (fonts embedded as TrueType, text editable); PNG is rendered at
    ``dpi`` (300). A suffix already on ``path_stem`` is kept (``fig1.v2`` -> ``fig1.v2.pdf``).
    Parent folders are created.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path_stem : str or os.PathLike
        The path without the format's suffix.
    formats : sequence of str
        ``pdf``, ``png``, ``svg`` (any format matplotlib writes).
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    list of pathlib.Path
        The written files, in the order of ``formats``.
    """
    if isinstance(formats, str):
        formats = (formats,)
    stem = Path(path_stem).expanduser()
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with context():
        for fmt in formats:
            fmt = str(fmt).lower().lstrip(".")
            path = stem.with_name(f"{stem.name}.{fmt}")
            metadata = {"Creator": "selfbias"} if fmt in ("pdf", "png", "svg") else None
            if fmt == "pdf":
                metadata = {"Creator": "selfbias", "CreationDate": None}
            fig.savefig(path, format=fmt, dpi=dpi, metadata=metadata, facecolor="white")
            written.append(path)
    return written


def iter_axes(axes) -> Iterator:
    yield from np.asarray(axes).ravel()
