"""Which weight files each image role carries, and the build step that copies exactly those.

One image per role instead of one image with every file: a RenderChunk cold start should not pull the
enhancers' 400 MB, nor AudioFeatures (which loads no network) 1.5 GB of SadTalker bundles. The roles
follow what each stage loads (``sadtalker.weights.checkpoints.locate_module`` decides the file of a
module: the size's safetensors bundle, else the v0.0.2 .pth file; tests/infra/test_image_roles.py checks
this table against it and runs every stage from a directory holding only its role's files):

* ``preprocess``  - face_3drecon (bundles or epoch_20.pth) + face-alignment's two files (landmarks);
* ``audio2coeff`` - audio2exp, audio2pose (bundles or the two auido2* .pth files);
* ``render``      - kp_extractor, generator (bundles or facevid2vid) + both MappingNets;
* ``enhance``     - GFPGAN, RealESRGAN + face-alignment's files (the enhancer finds the face with the
                    same landmark backend as Preprocess); the Finalize Fargate task;
* ``none``        - AudioFeatures and Finalize on Lambda (which never gets an enhancer job: the state
                    machine sends every one to Fargate) load no network.

Every role keeps the store's marker files (SYNTHETIC, PROFILE): what a result is made with must be said.

Stdlib only: it runs in a bare build stage (``select_weights.py ROLE SRC DST``) and in the entrypoint's
S3 fetch (``files_of(role)``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

BUNDLES = ("SadTalker_V0.0.2_256.safetensors", "SadTalker_V0.0.2_512.safetensors")
FACE_ALIGNMENT = ("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar")
MARKERS = ("SYNTHETIC", "PROFILE")

ROLES: dict[str, tuple[str, ...]] = {
    "preprocess": (*BUNDLES, "epoch_20.pth", *FACE_ALIGNMENT),
    "audio2coeff": (*BUNDLES, "auido2exp_00300-model.pth", "auido2pose_00140-model.pth"),
    "render": (*BUNDLES, "facevid2vid_00189-model.pth.tar", "mapping_00229-model.pth.tar",
               "mapping_00109-model.pth.tar"),
    "enhance": ("GFPGANv1.4.pth", "RealESRGAN_x2plus.pth", *FACE_ALIGNMENT),
    "none": (),
}
# Roles whose image is useless without any of their files: the build stops with the command that fixes
# it. The enhance role may be empty (a deployment without enhancers still finalizes long clips on Fargate).
NEEDS_FILES = ("preprocess", "audio2coeff", "render")


def files_of(role: str) -> tuple[str, ...]:
    """The file names a role's image carries (weights, then the store's markers)."""
    if role not in ROLES:
        raise SystemExit(f"unknown weights role {role!r}; known: {', '.join(ROLES)}")
    return (*ROLES[role], *MARKERS)


def select(role: str, src: Path, dst: Path) -> list[str]:
    """Copy the role's files present in ``src`` into ``dst`` (hard links when possible); their names."""
    dst.mkdir(parents=True, exist_ok=True)
    chosen = [name for name in files_of(role) if (src / name).is_file()]
    for name in chosen:
        try:
            os.link(src / name, dst / name)
        except OSError:  # another filesystem (or links not allowed): a copy is as good
            shutil.copy2(src / name, dst / name)
    weights = [n for n in chosen if n not in MARKERS]
    if role in NEEDS_FILES and not weights:
        raise SystemExit(
            f"weights/ holds none of the files the {role} image needs ({', '.join(ROLES[role])}): run "
            "'sadtalker weights download --dir weights' first, or build with --build-arg WEIGHTS_SOURCE=s3"
        )
    return chosen


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: select_weights.py ROLE SRC_DIR DST_DIR", file=sys.stderr)
        return 2
    role, src, dst = argv[1], Path(argv[2]), Path(argv[3])
    chosen = select(role, src, dst)
    skipped = sorted(p.name for p in src.glob("*") if p.is_file() and p.name not in chosen) if src.is_dir() else []
    print(f"weights for role {role}: {', '.join(chosen) or '(none)'}; left out: {', '.join(skipped) or '(none)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
