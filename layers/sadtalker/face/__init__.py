"""Source-face preprocessing.

- ``image``: defensive decoding of the source picture (or a video's first frame) to RGB uint8.
- ``video_frames``: frame-by-frame video decoding with imageio-ffmpeg's binary.
- ``landmarks``: 68-point landmark backends (dlib, face_alignment, auto).
- ``crop``: the crop modes crop / extcrop / resize / full / extfull and their crop_info.
- ``align``: 5-point alignment to 224 x 224 for the 3DMM regressor.
- ``reconstruct``: crop -> landmarks -> alignment -> 257/73 coefficients.
- ``reference_video``: per-frame (N, 70) coefficients of ref_pose / ref_eyeblink videos.

This package's ``__init__`` imports nothing heavy: ``image`` can be used without torch.
"""
