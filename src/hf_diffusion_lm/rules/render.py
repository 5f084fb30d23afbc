"""Draw rule samples as a PNG: per sample, its 3 rows of 3 panels, each a 3 x 3 grid of objects drawn with
their shape, size and color, and each row labelled with the rules the checker finds (or marked invalid)."""

import math

import numpy as np
from PIL import Image, ImageDraw

from .checker import INVALID, check_rows, row_rule_matrix
from .instances import RULE_NAMES

CELL = 32  # pixels per object position
PANEL = 3 * CELL
GAP = 8
LABEL_WIDTH = 200
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # one color per color value 0..9
SIDES = [0, 3, 4, 5, 6, 4, 8]  # shape 0 circle, 1 triangle, 2 square, 3 pentagon, 4 hexagon, 5 diamond, 6 octagon


def _draw_object(draw: ImageDraw.ImageDraw, cx: float, cy: float, shape: int, size: int, color: int):
    """One object centred at (cx, cy); size 0..9 scales its radius from 20% to 47% of a cell."""
    if INVALID in (shape, size, color):  # an undecodable token: a grey question mark
        draw.text((cx - 3, cy - 6), "?", fill="#888888")
        return
    radius = CELL * (0.2 + 0.03 * size)
    fill = PALETTE[color]
    if SIDES[shape] == 0:
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
        return
    # polygons stand on a vertex (so 4 sides make a diamond), except the square, turned by 45 degrees
    start = math.pi / 4 if shape == 2 else -math.pi / 2
    angles = [start + 2 * math.pi * k / SIDES[shape] for k in range(SIDES[shape])]
    draw.polygon([(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles], fill=fill)


def _draw_panel(draw: ImageDraw.ImageDraw, x0: int, y0: int, panel: np.ndarray):
    draw.rectangle([x0, y0, x0 + PANEL - 1, y0 + PANEL - 1], outline="#000000")
    for position, (shape, size, color) in enumerate(panel.tolist()):
        if min(shape, size, color) == -1:
            continue  # empty position
        h, w = divmod(position, 3)
        _draw_object(draw, x0 + (w + 0.5) * CELL, y0 + (h + 0.5) * CELL, shape, size, color)


def render_samples(samples, path=None) -> Image.Image:
    """An RGB image of samples [N, 3, 3, 9, 3] (or one sample [3, 3, 9, 3]), stacked vertically.

    Each row is labelled with the names of the rules it obeys; a row that obeys none gets a red frame
    and the label "invalid". Saved as PNG to path when given.
    """
    samples = check_rows(samples, (3, 3, 9, 3), "samples").reshape(-1, 3, 3, 9, 3)
    rules = row_rule_matrix(samples)  # [N, 3, 40]
    row_height = PANEL + GAP
    width = 3 * (PANEL + GAP) + LABEL_WIDTH
    image = Image.new("RGB", (width, max(len(samples), 1) * (3 * row_height + 2 * GAP)), "white")
    draw = ImageDraw.Draw(image)
    for i, sample in enumerate(samples):
        for r, row in enumerate(sample):
            y = i * (3 * row_height + 2 * GAP) + r * row_height
            for p, panel in enumerate(row):
                _draw_panel(draw, p * (PANEL + GAP), y, panel)
            names = [RULE_NAMES[k] for k in np.flatnonzero(rules[i, r])]
            if not names:
                draw.rectangle([0, y, 3 * PANEL + 2 * GAP - 1, y + PANEL - 1], outline="#ff0000", width=3)
            draw.text((3 * (PANEL + GAP), y + PANEL // 2 - 6), ", ".join(names) or "invalid",
                      fill="#000000" if names else "#ff0000")
    if path is not None:
        image.save(path, format="PNG")
    return image
