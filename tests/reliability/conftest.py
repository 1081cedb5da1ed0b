"""Reliability fixtures (helpers live in rel_helpers.py: a module named "conftest" is ambiguous across folders).

Every job runs through the real state machine on the local runtime (moto). moto's world is global per
process, so each test module opens ONE LocalRuntime (module-scoped fixture) and runs all its cases in it.

What a job may leave in ``work/<job>/`` (the bucket's lifecycle rule expires ``work/`` after 7 days):
the intermediates of the stages that completed - ``original.png``, ``source.png``, ``face.npz``,
``audio.npz``, ``coeffs.npz``, ``ref_*.npz``, ``chunks/*.npz``, ``timings/*.json``, the plan's item
arrays, the Maps' results, ``segments/*.ts``, the stream's audio parts and the range tasks' recorded errors
- and nothing else (never ``video.partial.mp4``; the exact list is ``rel_helpers.WORK_ALLOWED``). A job refused by
ValidateJob leaves nothing there at all. Outside ``work/<job>/`` a failed job writes only
``outputs/<job>/error.json``; a successful one ``outputs/<job>/{video.mp4, preview.jpg, result.json}``.
"""
