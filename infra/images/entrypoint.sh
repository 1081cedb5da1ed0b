#!/bin/sh
# Container entrypoint of the inference image (Lambda and Fargate): prepare /tmp, then exec the runtime.
#  1. seed numba's cache into the writable $NUMBA_CACHE_DIR (the image filesystem is read-only on Lambda);
#  2. with $SADTALKER_WEIGHTS_S3 set, pull the image role's files of the weights prefix into /tmp
#     (resumable, skips complete files) and point $SADTALKER_WEIGHTS at it.
# $NUMBA_CPU_NAME comes from the image (generic): the seeded cache was built under the same setting.
set -eu

seed="${SADTALKER_NUMBA_CACHE_SEED:-/opt/sadtalker/numba-cache}"
if [ -d "$seed" ] && [ -n "${NUMBA_CACHE_DIR:-}" ] && [ ! -d "$NUMBA_CACHE_DIR" ]; then
    mkdir -p "$NUMBA_CACHE_DIR"
    cp -R "$seed/." "$NUMBA_CACHE_DIR/"
fi

if [ -n "${SADTALKER_WEIGHTS_S3:-}" ]; then
    SADTALKER_WEIGHTS="$(python /opt/sadtalker/bin/fetch_weights.py "$SADTALKER_WEIGHTS_S3" /tmp/sadtalker-weights "${SADTALKER_WEIGHTS_ROLE:-}")"
    export SADTALKER_WEIGHTS
fi

exec "$@"
