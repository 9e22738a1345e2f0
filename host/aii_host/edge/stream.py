# SPDX-License-Identifier: MIT
"""Faces in a stream of frames (a folder, a video, a camera) as deadline jobs.

detect_stream(source, detector, deadline_us, *, max_frames=None, on_item=None) -> report

One periodic task on aii_host.Scheduler (period = deadline) reads the source's next frame in
each job and runs the detector and grounding on it; on_item(current, verdict) is called after
each frame with the source's description of it (image path and notes, or frame number and
time). Video and camera frames also pass the temporal check (temporal.Tracker): a face is
reported once it has persisted. Misses are recorded, not acted on (policy "none"): every frame
of a file is processed. A KeyboardInterrupt (Ctrl-C on a camera) ends the run cleanly; the
report says so.
"""

from . import jobs
from .temporal import Tracker


def detect_stream(source, detector, deadline_us, *, max_frames=None, on_item=None):
    tracker = Tracker() if source.kind in ("video", "camera") else None
    pipe = jobs.facedet_pipeline(detector, tracker=tracker)

    def result(_, verdict):
        if on_item is not None:
            on_item(source.current, verdict)

    job = jobs.InferenceJob(
        pipe,
        source.read,
        period_us=deadline_us,
        deadline_us=deadline_us,
        budget_us=deadline_us,
        policy="none",
        on_result=result,
        sample_s=0.5,
    )
    try:
        report = job.run(max_frames=max_frames)
    except KeyboardInterrupt:
        report = {
            "processed": len(job.times["total"]),
            "misses": job.misses,
            "stop_reason": "interrupted",
            "stages_us": {k: jobs.summarize(v) for k, v in job.times.items()},
        }
    finally:
        source.close()
    report["tracks"] = tracker.started if tracker is not None else None
    return report
