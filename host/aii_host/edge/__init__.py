# SPDX-License-Identifier: MIT
"""Edge inference on Linux boards: LiteRT models as deadline jobs on aii_host.Scheduler.

runtime (loader and capability probe), jobs (deadline jobs and miss policies), facedet (MediaPipe
short-range face detector: anchors, decoding, NMS), grounding (checks a result against its
frame) with geometry (keypoints), opinions (second-opinion models) and temporal (video),
images (every image file as an RGB frame), sources (folders, video files, cameras) and stream
(a stream as deadline jobs), tflite_build and int8ref (small int8 models and an independent
numpy reference for the golden tests). The heavy imports (numpy, LiteRT, psutil) happen inside the functions that need them, so
`import aii_host` stays light on a node without them.
"""

from .errors import EdgeError, ModelError, RuntimeMissingError

__all__ = ["EdgeError", "ModelError", "RuntimeMissingError"]
