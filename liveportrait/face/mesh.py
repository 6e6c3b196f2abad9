"""Which points of MediaPipe's 478-point face mesh stand in for the reference's landmark sets.

The reference frames faces with a private 203-point model (spec 4.3/4.4) and measures eye and lip
opening on it (spec 4.11).  The mesh has no such points, so each role is given to the mesh points
that sit at the same place on the face:

* eye anchor: per eye, the mean of both corners and both lid mid-points (203: 0, 6, 12, 18 and
  24, 30, 36, 42); mouth anchor: the two outer mouth corners (203: 48, 66);
* framing cloud: the points whose extent sets the crop size.  The reference's cloud spans jaw line,
  chin and eyebrows but not the forehead, so the mesh's face oval is used below the brows only,
  plus the brows.  Checked on the example driving videos d0 and d12, which the reference cropper
  framed: the driving crop comes out within 2.5% (centre) and 3.3% (side) of their frames, and
  other choices of brow, temple and chin points do no better (tests/face/test_video.py);
* ratios: lid mid-points over eye corners, inner-lip mid-points over mouth corners.

"Right"/"left" follow the mesh: the subject's right eye, which is on the image's left in a frontal
photo, comes first.  That is also the order of the reference's (1, 2) eye-ratio arrays.
"""

from __future__ import annotations

import numpy as np

NUM_POINTS = 478

# eyes: (outer corner, upper-lid middle, inner corner, lower-lid middle)
RIGHT_EYE = (33, 159, 133, 145)
LEFT_EYE = (263, 386, 362, 374)
MOUTH_CORNERS = (61, 291)
INNER_LIP = (13, 14)  # upper, lower
OUTER_LIP = (0, 17)  # upper, lower
NOSE_TIP = 1

# the face oval from ear to ear through the chin (below the eyebrows)
JAW = (
    127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
    377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356,
)
RIGHT_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
LEFT_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)

FRAMING = np.array(sorted(set(JAW + RIGHT_BROW + LEFT_BROW + RIGHT_EYE + LEFT_EYE + MOUTH_CORNERS)))
