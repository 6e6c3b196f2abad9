"""Paste-back (spec 4.13, 4.15): blend the generated 512 crop into the original picture.

The reference ships a 512x512 PNG mask; we draw the same shape: a square that is fully opaque
inside [16, 496]^2 and fades out linearly over the outer 16 pixels (16 grey levels per pixel),
with rounded corners.  Drawn this way it matches the reference file to within one grey level.

Blending follows the reference exactly: the uint8 mask and the crop are warped with M_c2o
(bilinear, zero border), the mask is divided by 255, and
``clip(mask * crop + (1 - mask) * original)`` is computed in float32 and truncated to uint8.
Only the bounding box of the warped crop is touched, so pasting a face into a 4K frame costs the
same as into a small one.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import InputError

FEATHER_512 = 16  # fade width of the reference mask at dsize 512


def mask_template_u8(dsize: int = 512) -> np.ndarray:
    """The mask as uint8 (dsize, dsize), as the reference PNG stores it.

    A pixel's value is 255 - 16 * r (for dsize 512), where r is its Euclidean distance to the inner
    square, measured with the left/top border at 0 and the right/bottom border at ``dsize`` (the
    reference's own asymmetry: its first row and column are 0, its last ones 15).
    """
    feather = FEATHER_512 * dsize / 512
    x = np.arange(dsize, dtype=np.float64)
    d = np.maximum(np.maximum(feather - x, x - (dsize - feather)), 0.0)
    r = np.hypot(d[None, :], d[:, None])
    return np.clip(np.round(255.0 - (256.0 / feather) * r), 0, 255).astype(np.uint8)


def mask_template(dsize: int = 512) -> np.ndarray:
    """The feathered face mask in crop space, float32 (dsize, dsize) in [0, 1]."""
    return mask_template_u8(dsize).astype(np.float32) / 255.0


def _roi_of_warp(m_c2o: np.ndarray, dsize: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Pixel bounds (x0, y0, x1, y1) in the original that the warped crop can touch, or None."""
    h, w = shape
    corners = np.array([[-1, -1], [dsize, -1], [-1, dsize], [dsize, dsize]], np.float64)
    p = corners @ np.asarray(m_c2o, np.float64)[:2, :2].T + np.asarray(m_c2o, np.float64)[:2, 2]
    x0 = max(int(math.floor(p[:, 0].min())) - 1, 0)
    y0 = max(int(math.floor(p[:, 1].min())) - 1, 0)
    x1 = min(int(math.ceil(p[:, 0].max())) + 2, w)
    y1 = min(int(math.ceil(p[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


class PasteBack:
    """Blend crops into pictures of one size with one crop->original affine.

    Build it once per source picture (or per source-video frame); the warped mask is computed at
    construction and reused for every generated frame.
    """

    def __init__(self, image_shape, m_c2o: np.ndarray, mask: np.ndarray | None = None,
                 dsize: int = 512):
        self.shape = (int(image_shape[0]), int(image_shape[1]))
        self.dsize = dsize
        self.m_c2o = np.asarray(m_c2o, np.float32)
        self.roi = _roi_of_warp(self.m_c2o, dsize, self.shape)
        if self.roi is None:
            self._m = self._mask = None
            return
        x0, y0, x1, y1 = self.roi
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        self._m = (shift @ self.m_c2o.astype(np.float64)).astype(np.float32)[:2]
        self._size = (x1 - x0, y1 - y0)
        if mask is None:
            mask_u8 = mask_template_u8(dsize)
        elif mask.dtype == np.uint8:
            mask_u8 = mask
        else:
            mask_u8 = None
        if mask_u8 is not None:
            warped = cv2.warpAffine(mask_u8, self._m, self._size, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            m = warped.astype(np.float32) / 255.0
        else:
            m = cv2.warpAffine(np.asarray(mask, np.float32), self._m, self._size,
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if m.ndim == 3:
            m = m[..., 0]
        self._mask = m
        # where the mask is exactly 1 the blend is the warped crop, where 0 the original
        # (1*a + 0*b == a in float32), so the float blend only runs on the feathered band
        self._inside = (m >= 1.0)[..., None]
        self._band = np.nonzero((m > 0) & (m < 1))
        band = m[self._band][:, None]
        self._band_mask = band
        self._band_inv = np.float32(1.0) - band

    def warped_mask(self) -> np.ndarray:
        """The full-size float32 (H, W) mask, for inspection and tests."""
        full = np.zeros(self.shape, np.float32)
        if self.roi is not None:
            x0, y0, x1, y1 = self.roi
            full[y0:y1, x0:x1] = self._mask
        return full

    def __call__(self, crop: np.ndarray, original: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Return ``original`` with ``crop`` blended in.

        The result goes to a new array, or to ``out``; ``out=original`` blends in place and skips
        copying the rest of the frame.
        """
        if original.shape[:2] != self.shape:
            raise InputError(f"paste-back was prepared for {self.shape[1]}x{self.shape[0]} pictures, "
                             f"got {original.shape[1]}x{original.shape[0]}")
        if crop.shape[:2] != (self.dsize, self.dsize):
            raise InputError(f"paste-back expects a {self.dsize}x{self.dsize} crop, "
                             f"got {crop.shape[1]}x{crop.shape[0]}")
        if out is None:
            out = original.copy()
        elif out is not original:
            out[...] = original
        if self.roi is None:
            return out
        x0, y0, x1, y1 = self.roi
        warped = cv2.warpAffine(crop, self._m, self._size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        roi = out[y0:y1, x0:x1]
        np.copyto(roi, warped, where=self._inside)
        orig = original[y0:y1, x0:x1][self._band].astype(np.float32)
        blend = self._band_mask * warped[self._band].astype(np.float32)
        blend += self._band_inv * orig
        np.clip(blend, 0, 255, out=blend)
        roi[self._band] = blend.astype(np.uint8)
        return out


def paste_back(original_rgb: np.ndarray, crop_rgb: np.ndarray, m_c2o: np.ndarray,
               mask: np.ndarray | None = None) -> np.ndarray:
    """One-shot paste-back of a 512 crop into ``original_rgb`` (see ``PasteBack`` for repeated use)."""
    return PasteBack(original_rgb.shape, m_c2o, mask, dsize=crop_rgb.shape[0])(crop_rgb, original_rgb)
