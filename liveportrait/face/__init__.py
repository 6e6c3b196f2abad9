"""Face analysis: detection and landmarks (``backend``), crop geometry (``geometry``), eye/lip
ratios (``ratios``), paste-back masks (``mask``), and the picture and video croppers
(``cropper``).  Import the submodules directly; this package imports nothing heavy.
"""
