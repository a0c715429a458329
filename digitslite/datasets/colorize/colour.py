"""sRGB <-> CIE Lab (D65) and YUV, and how each plane is stored in 8 bits.

The conversions are scikit-image's (`rgb2lab`, D65 2-degree observer, float64; `rgb2yuv`, BT.601),
which is what Zhang et al.'s own code uses. Each plane is stored as uint8 by one affine map
`stored = round((value - low) / (high - low) * 255)`, so `stored / 255` is the value scaled to
[0, 1] (the regression target of a Sigmoid output) and every reader undoes it with `decode`.
"""
from dataclasses import dataclass

import numpy as np
from skimage import color

SPACES = ("lab", "yuv")
GREY_SPREAD = 4  # a pixel whose R, G, B differ by at most this many levels is grey (JPEG noise)


@dataclass(frozen=True)
class PlaneRange:
    """The values of one plane that 0 and 255 stand for."""

    low: float
    high: float

    def encode(self, values: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(values, dtype=np.float64) - self.low) * (255.0 / (self.high - self.low))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        return self.low + np.asarray(stored, dtype=np.float64) * ((self.high - self.low) / 255.0)

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True)
class ColourSpace:
    """A lightness plane the network sees and two chroma planes it predicts."""

    name: str
    planes: tuple[str, str, str]
    ranges: tuple[PlaneRange, PlaneRange, PlaneRange]

    def from_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 sRGB -> H x W x 3 float64 in this space's units."""
        return color.rgb2lab(rgb) if self.name == "lab" else color.rgb2yuv(rgb)

    def to_rgb(self, values: np.ndarray) -> np.ndarray:
        """H x W x 3 values in this space's units -> H x W x 3 uint8 sRGB (out-of-gamut clipped)."""
        rgb = color.lab2rgb(values) if self.name == "lab" else color.yuv2rgb(values)
        return np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)

    def encode(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H x W uint8 lightness, H x W x 2 uint8 chroma) as stored."""
        lightness = self.ranges[0].encode(values[..., 0])
        chroma = np.stack([self.ranges[1].encode(values[..., 1]), self.ranges[2].encode(values[..., 2])], -1)
        return lightness, chroma

    def decode(self, lightness: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        """Stored planes back to H x W x 3 values in this space's units."""
        return np.stack([self.ranges[0].decode(lightness), self.ranges[1].decode(chroma[..., 0]),
                         self.ranges[2].decode(chroma[..., 1])], -1)

    def rgb_from_stored(self, lightness: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 sRGB of stored planes (H x W lightness, H x W x 2 chroma)."""
        return self.to_rgb(self.decode(lightness, chroma))

    def to_dict(self) -> dict:
        stored = {plane: span.to_dict() for plane, span in zip(self.planes, self.ranges, strict=True)}
        return {"name": self.name, "planes": list(self.planes), "stored": stored}


# Lab's a and b are stored as round(value) + 128: one stored step is one ab unit.
LAB = ColourSpace("lab", ("L", "a", "b"), (PlaneRange(0.0, 100.0), PlaneRange(-128.0, 127.0),
                                           PlaneRange(-128.0, 127.0)))
# BT.601 YUV: U spans +-0.436, V +-0.615 for sRGB colours.
YUV = ColourSpace("yuv", ("Y", "U", "V"), (PlaneRange(0.0, 1.0), PlaneRange(-0.436, 0.436),
                                           PlaneRange(-0.615, 0.615)))
COLOUR_SPACES = {space.name: space for space in (LAB, YUV)}


def is_grey(rgb: np.ndarray) -> bool:
    """Whether no pixel of an H x W x 3 uint8 image has colour (R, G, B within GREY_SPREAD)."""
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    return int(spread.max(initial=0)) <= GREY_SPREAD
