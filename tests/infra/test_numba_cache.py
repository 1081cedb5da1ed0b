"""The image's seeded numba cache must be hit on a host whose CPU differs from the build machine's.

numba keys every cached overload by ``(signature, (target triple, host CPU name, host CPU features), ...)``.
The image warms librosa's ``cache=True`` functions at build time (infra/images/warm_numba_cache.py); on
Lambda the CPU is whatever the fleet runs, so a key with the build machine's CPU misses and every cold
start recompiles. The Dockerfile therefore sets ``NUMBA_CPU_NAME=generic`` (numba then uses no host
features either) for the build and the runtime alike. These tests show, with a tiny jitted function in
fresh processes, that such a cache is loaded under a different host CPU, and that without the setting
it is not (the negative control keeps the first test honest).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cdk_template import REPO

MODULE = '''
from numba import njit


@njit(cache=True)
def poly(x):
    acc = 0.0
    for i in range(8):
        acc = acc * x + i
    return acc
'''

# Runs in a fresh interpreter: optionally pretends the host CPU is another model (the name and the
# feature string llvmlite reports, which is what numba puts in its cache key), calls the function once,
# and prints numba's own hit/miss counters.
PROBE = '''
import json, sys
fake = sys.argv[1]
if fake:
    import llvmlite.binding as ll
    real_features = ll.get_host_cpu_features().flatten()
    ll.get_host_cpu_name = lambda: fake
    import numba.core.codegen as cg
    # one feature fewer than the real host: code built for it still runs here
    cg.get_host_cpu_features = lambda: real_features.replace("+avx2", "-avx2")
sys.path.insert(0, sys.argv[2])
from cachedmod import poly
assert poly(0.5) > 0
st = poly.stats
print(json.dumps({"hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values())}))
'''


def _run(tmp: Path, cache: Path, fake_cpu: str, cpu_name: str | None) -> dict[str, int]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NUMBA_CACHE_DIR": str(cache),
           "PYTHONDONTWRITEBYTECODE": "1"}
    if cpu_name is not None:
        env["NUMBA_CPU_NAME"] = cpu_name
    proc = subprocess.run([sys.executable, "-c", PROBE, fake_cpu, str(tmp)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _other_cpu() -> str:
    """A real LLVM CPU name that is not this host's (LLVM warns about unknown names)."""
    import llvmlite.binding as ll

    host = ll.get_host_cpu_name()
    return "nehalem" if host != "nehalem" else "haswell"


def _module(tmp: Path) -> Path:
    tmp.mkdir()
    (tmp / "cachedmod.py").write_text(MODULE)
    return tmp


def test_a_generic_cache_built_on_one_cpu_is_hit_on_another(tmp_path):
    src, cache = _module(tmp_path / "src"), tmp_path / "cache"
    built = _run(src, cache, "", "generic")  # the image build: this host's CPU
    assert built == {"hits": 0, "misses": 1}
    assert list(cache.rglob("*.nbi")), "nothing was cached"
    on_lambda = _run(src, cache, _other_cpu(), "generic")  # cold start on another CPU model
    assert on_lambda == {"hits": 1, "misses": 0}


def test_without_the_setting_another_cpu_misses_the_cache(tmp_path):
    src, cache = _module(tmp_path / "src"), tmp_path / "cache"
    assert _run(src, cache, "", None) == {"hits": 0, "misses": 1}
    assert _run(src, cache, "", None) == {"hits": 1, "misses": 0}  # same host: the cache works
    assert _run(src, cache, _other_cpu(), None) == {"hits": 0, "misses": 1}  # another CPU: recompiled


def test_the_image_uses_the_generic_cpu_for_the_warm_up_and_at_run_time():
    text = (REPO / "functions" / "Dockerfile").read_text()
    # one ENV in the shared runtime stage covers the build-time warm-up RUN and both final targets
    env = re.search(r"^ENV (?:.*\\\n)*.*$", text, re.M)
    assert env and re.search(r"\bNUMBA_CPU_NAME=generic\b", env.group(0))
    assert env.start() < text.index("warm_numba_cache.py")
    warm = (REPO / "infra" / "images" / "warm_numba_cache.py").read_text()
    assert "NUMBA_CPU_NAME" in warm  # the warm-up refuses to seed a host-specific cache


def test_the_warm_up_refuses_a_host_specific_cache(tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "infra" / "images" / "warm_numba_cache.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "NUMBA_CPU_NAME=generic" in proc.stderr

