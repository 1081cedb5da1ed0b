"""Source-face preprocessing: image decoding, landmarks, crop modes, 5-point alignment, 3DMM coefficients."""
