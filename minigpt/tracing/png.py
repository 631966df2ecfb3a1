"""Heatmaps as small inline images: colour maps, and a palette PNG written with zlib alone.

A heatmap of 64 x 512 values drawn as SVG rectangles costs ~2 MB of markup; as an 8-bit
palette PNG it costs a few tens of kB, and the browser scales it up pixel-exact
(``image-rendering: pixelated``). Each value becomes one of LEVELS palette indices; two more
indices draw cells that have no value (MISSING: masked, not finite, or exactly 0 on a log
scale) and the thin gaps between heads (GAP).
"""
from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

__all__ = ["LEVELS", "MISSING", "GAP", "COLOURMAPS", "palette", "png", "data_uri",
           "css_gradient"]

LEVELS = 64                  # colours per map: enough for the eye, and it compresses well
MISSING, GAP = LEVELS, LEVELS + 1
MISSING_RGB, GAP_RGB = (200, 200, 200), (255, 255, 255)

# colour stops (ColorBrewer): signed values, magnitudes, and gradient sizes on a log scale
COLOURMAPS = {
    "div": ["#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b"],
    "seq": ["#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"],
    "log": ["#ffffcc", "#fed976", "#fd8d3c", "#e31a1c", "#800026"],
}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def palette(kind: str) -> np.ndarray:
    """(LEVELS + 2, 3) uint8: LEVELS colours interpolated through the map's stops, then the
    MISSING grey and the GAP white."""
    stops = np.array([_rgb(c) for c in COLOURMAPS[kind]], dtype=np.float64)
    at = np.linspace(0, len(stops) - 1, LEVELS)
    lo = np.minimum(at.astype(int), len(stops) - 2)
    frac = (at - lo)[:, None]
    colours = stops[lo] * (1 - frac) + stops[lo + 1] * frac
    return np.vstack([colours.round(), [MISSING_RGB, GAP_RGB]]).astype(np.uint8)


def css_gradient(kind: str) -> str:
    """The colour map as a CSS linear-gradient, for legends."""
    return f"linear-gradient(to right, {', '.join(COLOURMAPS[kind])})"


def _chunk(tag: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + tag + body
            + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))


def png(indices: np.ndarray, colours: np.ndarray) -> bytes:
    """An 8-bit palette PNG of a (height, width) array of palette indices.

    >>> png(np.zeros((1, 1), np.uint8), np.zeros((1, 3), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    h, w = indices.shape
    rows = np.hstack([np.zeros((h, 1), np.uint8), indices.astype(np.uint8)])  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + _chunk(b"PLTE", colours.astype(np.uint8).tobytes())
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
            + _chunk(b"IEND", b""))


def data_uri(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")
