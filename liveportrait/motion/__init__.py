"""Pure keypoint math: rotations, transforms, motion composition, filters, editing controls."""
