"""What training needs from the face mesh: head pose targets, face/eye/lip regions, face masks.

Landmarks are the face backend's 478-point mesh.  In prepared data they are stored in crop pixels;
the dataset hands them to the losses normalised to [-1, 1] (x right, y down), the frame of the
keypoints and of ``grid_sample`` with ``align_corners=False``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..face import mesh

NUM_LANDMARKS = mesh.NUM_POINTS
FOREHEAD, CHIN, NOSE_TIP = 10, 152, 1
EYE_POINTS = np.array(sorted(set(mesh.RIGHT_EYE + mesh.LEFT_EYE + mesh.RIGHT_BROW + mesh.LEFT_BROW)))
LIP_POINTS = np.array([61, 291, 0, 17, 13, 14])
FACE_POINTS = mesh.FRAMING

# region -> (height, width) of its patch as a fraction of the image side
PATCH_FRACTION = {"face": (0.5, 0.5), "eye": (0.125, 0.25), "lip": (0.125, 0.25)}


# ---------------------------------------------------------------------------------------------
# head pose


def rotation_to_angles(R: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a matrix in the keypoints' convention.

    ``liveportrait.motion.keypoints.rotation_matrix`` returns ``(Rz(roll) Ry(yaw) Rx(pitch))^T``;
    this inverts it (for |yaw| < 90 degrees).
    """
    m = np.asarray(R, np.float64).T  # Rz Ry Rx
    yaw = math.asin(max(-1.0, min(1.0, -m[2, 0])))
    pitch = math.atan2(m[2, 1], m[2, 2])
    roll = math.atan2(m[1, 0], m[0, 0])
    return math.degrees(pitch), math.degrees(yaw), math.degrees(roll)


def pose_from_landmarks(lm: np.ndarray) -> np.ndarray | None:
    """(3,) float32 pitch, yaw, roll in degrees from a 3-D mesh (x right, y down, z away), or None.

    The face's own frame is built from the mesh: x along the outer eye corners (subject's right to
    left, i.e. image left to right), y from forehead to chin, z their cross product.  That frame,
    as rows, is the rotation a frontal canonical face undergoes (``x = x_c @ R``), so its angles are
    head-pose targets in the networks' convention (zero for a frontal, upright face).  They are
    estimates: the paper used a pretrained pose network, which the user may plug in instead by
    writing ``pose`` into the prepared clips.
    """
    p = np.asarray(lm, np.float64)
    if p.ndim != 2 or p.shape[0] < NUM_LANDMARKS or p.shape[1] < 3:
        return None
    ex = p[mesh.LEFT_EYE[0]] - p[mesh.RIGHT_EYE[0]]
    ey = p[CHIN] - p[FOREHEAD]
    nx = np.linalg.norm(ex)
    if nx < 1e-6:
        return None
    ex = ex / nx
    ey = ey - ex * float(ey @ ex)
    ny = np.linalg.norm(ey)
    if ny < 1e-6:
        return None
    ey = ey / ny
    ez = np.cross(ex, ey)
    R = np.stack([ex, ey, ez])
    return np.array(rotation_to_angles(R), np.float32)


# ---------------------------------------------------------------------------------------------
# regions


def normalise_points(pts: np.ndarray, size: int) -> np.ndarray:
    """Pixel coordinates (pixel centres at integers) of a ``size`` image -> [-1, 1]."""
    return ((np.asarray(pts, np.float32) + 0.5) / size * 2 - 1).astype(np.float32)


def _default_boxes(b: int, device, dtype) -> dict[str, torch.Tensor]:
    """Where face, eyes and lips sit in a crop of the reference framing, for samples without landmarks."""
    t = lambda *v: torch.tensor(v, device=device, dtype=dtype).expand(b, 4)  # noqa: E731
    return {"face": t(0.0, 0.05, 1.0, 1.0), "eye": t(0.0, -0.12, 0.5, 0.25), "lip": t(0.0, 0.3, 0.4, 0.2)}


def region_boxes(lm: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Boxes (B, 4) = (cx, cy, w, h) in [-1, 1] units for "face", "eye" (both eyes and brows) and
    "lip", from normalised landmarks (B, 478, 2).  Aspect ratios are fixed (face 1:1, eye and lip
    2:1) so that patches are resampled without distortion."""
    b = lm.shape[0]
    lm = lm.detach().float()

    def box(idx, pad: float, aspect: float, min_w: float):
        pts = lm[:, torch.as_tensor(idx, device=lm.device)]
        lo, hi = pts.min(1).values, pts.max(1).values
        c = (lo + hi) / 2
        w = torch.maximum((hi - lo)[:, 0], (hi - lo)[:, 1] * aspect) * (1 + pad)
        w = w.clamp(min=min_w)
        return torch.stack([c[:, 0], c[:, 1], w, w / aspect], dim=1)

    out = {"face": box(FACE_POINTS, 0.1, 1.0, 0.2), "eye": box(EYE_POINTS, 0.15, 2.0, 0.1),
           "lip": box(LIP_POINTS, 0.5, 2.0, 0.08)}
    if valid is not None and not bool(valid.all()):
        default = _default_boxes(b, lm.device, lm.dtype)
        keep = valid.to(lm.device).bool()[:, None]
        out = {k: torch.where(keep, v, default[k]) for k, v in out.items()}
    return out


def crop_patches(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Differentiable crops (B, C, h, w) of ``boxes`` (B, 4) = (cx, cy, w, h) in [-1, 1] units."""
    b = images.shape[0]
    boxes = boxes.to(images.device, torch.float32)
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=torch.float32)
    theta[:, 0, 0] = boxes[:, 2] / 2
    theta[:, 0, 2] = boxes[:, 0]
    theta[:, 1, 1] = boxes[:, 3] / 2
    theta[:, 1, 2] = boxes[:, 1]
    grid = F.affine_grid(theta, [b, images.shape[1], size[0], size[1]], align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def patch_size(region: str, image_side: int) -> tuple[int, int]:
    fh, fw = PATCH_FRACTION[region]
    return max(16, int(round(image_side * fh))), max(16, int(round(image_side * fw)))


def region_patches(images: torch.Tensor, boxes: dict[str, torch.Tensor], regions) -> dict[str, torch.Tensor]:
    """Patches of the named regions ("image" is the whole picture)."""
    side = images.shape[-1]
    out = {}
    for r in regions:
        out[r] = images if r == "image" else crop_patches(images, boxes[r], patch_size(r, side))
    return out


def face_mask(landmarks_px: np.ndarray | None, size: int, dilation: float = 0.1) -> np.ndarray:
    """(size, size) float32 mask, 1 on the face: the convex hull of the mesh grown by ``dilation``
    of the side.  Without landmarks, a central ellipse."""
    mask = np.zeros((size, size), np.uint8)
    if landmarks_px is None:
        cv2.ellipse(mask, (size // 2, int(size * 0.5)), (int(size * 0.3), int(size * 0.38)), 0, 0, 360, 1, -1)
    else:
        hull = cv2.convexHull(np.round(np.asarray(landmarks_px)[:, :2]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    k = int(round(dilation * size))
    if k > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return mask.astype(np.float32)
