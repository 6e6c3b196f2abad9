"""Training LivePortrait's networks: data preparation and the paper's two stages.

- ``data``: ``prepare`` cuts portrait videos into one-face clips with crops, landmarks, head-pose
  targets and eye/lip ratios (``liveportrait data prepare``); ``PairDataset`` serves training
  pairs deterministically; ``quality`` scores clips (pluggable).
- ``stage1``: F, M, W and G from scratch (``liveportrait train stage1``); ``stage2``: stitching and
  eye/lip retargeting with the base frozen (``liveportrait train stage2``).
- ``losses``, ``discriminator``, ``backbones`` (perceptual VGG-19 and identity networks from user
  files), ``landmarks`` (regions, masks, pose), ``spectral`` (the generator's power iteration).
- ``engine`` (the shared loop), ``distributed`` (torchrun / DDP), ``checkpointing`` (exact resume,
  released-format export), ``config`` (one dataclass per concern, read from TOML or JSON).

Nothing here is imported by inference: ``import liveportrait`` stays light.
"""
