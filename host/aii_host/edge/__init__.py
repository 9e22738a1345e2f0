# SPDX-License-Identifier: MIT
"""Edge inference on Linux boards: LiteRT models as deadline jobs on aii_host.Scheduler.

runtime (loader and capability probe), jobs (deadline jobs and miss policies), facedet (MediaPipe
short-range face detector: anchors, decoding, NMS), grounding (checks a result against its
frame) with geometry (keypoints), opinions (second-opinion models) and temporal (video),
images (every image file as an RGB frame), sources (folders, video files, cameras) and stream
(a stream as deadline jobs), modelgen (small int8 models; the golden tests' numpy reference is
tests/host/int8ref.py). numpy, LiteRT and psutil are the edge extra (pip install
'aii-host[edge]'): the CLI imports them only when an edge command runs.
"""

from .errors import EdgeError, ModelError, RuntimeMissingError

__all__ = ["EdgeError", "ModelError", "RuntimeMissingError"]
