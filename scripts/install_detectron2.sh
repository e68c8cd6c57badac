#!/usr/bin/env bash
# Install official detectron2 (commit a59f0563, April 2024) as pure Python into a venv that has torch.
#
# detectron2 is not on PyPI under its own name. `sal-detectron2==0.7.2` is an unmodified copy of the
# official tree at that commit, but its only wheel is tagged cp310 and carries a CUDA/cp310 `_C.so`.
# We fetch that wheel (sha256-pinned), drop the `.so`, re-tag it py3-none-any, cache the result and
# install it with detectron2's own pins. Nothing MIMDet uses needs `_C`: ROIAlign and NMS come from
# torchvision, COCOEvaluator falls back to plain pycocotools.
#
# Usage:  PYTHON=.venv/bin/python bash scripts/install_detectron2.sh
# Env:    DETECTRON2_WHEEL_CACHE (default ~/.cache/mimdet/detectron2-wheel), D2_FORCE=1 to rebuild.
# A second run finds the install working and returns in a few seconds.
set -euo pipefail

DIST=sal-detectron2
VERSION=0.7.2
ORIG_WHEEL=sal_detectron2-0.7.2-cp310-none-any.whl
SHA256=491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561
# numpy<2: detectron2 calls np.array(..., copy=False); setuptools<81: fvcore/iopath import pkg_resources.
PINS=('numpy<2' 'setuptools>=77.0.3,<81' 'fvcore>=0.1.5,<0.1.6' 'iopath>=0.1.7,<0.1.10')

PY="${PYTHON:-${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}}"
CACHE="${DETECTRON2_WHEEL_CACHE:-$HOME/.cache/mimdet/detectron2-wheel}"
say() { printf 'install_detectron2: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ -n "$PY" ] || die "set PYTHON=/path/to/venv/bin/python or activate a venv"
"$PY" -c 'import torch, torchvision' 2>/dev/null || die "torch/torchvision are not importable by $PY; install them first"

works() {
  "$PY" - <<'EOF' 2>/dev/null
import warnings
warnings.simplefilter("ignore")
import numpy
from detectron2.config import LazyConfig  # noqa: F401
from detectron2.modeling import GeneralizedRCNN  # noqa: F401
from detectron2.evaluation import COCOEvaluator  # noqa: F401
import fvcore, iopath, pkg_resources  # noqa: F401
assert int(numpy.__version__.split(".")[0]) < 2
EOF
}

if [ "${D2_FORCE:-0}" != 1 ] && works; then
  say "detectron2 already installed and importable; nothing to do"
  exit 0
fi

mkdir -p "$CACHE"
REPACKED="$CACHE/py3/sal_detectron2-$VERSION-py3-none-any.whl"
if [ "${D2_FORCE:-0}" = 1 ] || [ ! -f "$REPACKED" ]; then
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  ORIG="$CACHE/$ORIG_WHEEL"
  if ! { [ -f "$ORIG" ] && echo "$SHA256  $ORIG" | sha256sum -c --status -; }; then
    say "downloading $DIST==$VERSION"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.10 --implementation cp \
      --abi none --platform any -d "$WORK/dl" "$DIST==$VERSION" || die "pip download of $DIST==$VERSION failed"
    echo "$SHA256  $WORK/dl/$ORIG_WHEEL" | sha256sum -c --status - || die "sha256 mismatch for $ORIG_WHEEL"
    mv "$WORK/dl/$ORIG_WHEEL" "$ORIG"
  fi
  say "repacking $ORIG_WHEEL as py3-none-any without _C"
  "$PY" -m pip install -q 'wheel>=0.40'
  "$PY" -m wheel unpack -d "$WORK/src" "$ORIG" >/dev/null
  ROOT="$WORK/src/sal_detectron2-$VERSION"
  META="$ROOT/sal_detectron2-$VERSION.dist-info/WHEEL"
  [ -f "$META" ] || die "unexpected layout inside $ORIG"
  rm -f "$ROOT"/detectron2/_C.*.so
  sed -i -e '/^Tag:/d' -e '/^[[:space:]]*$/d' -e 's/^Root-Is-Purelib:.*/Root-Is-Purelib: true/' "$META"
  echo "Tag: py3-none-any" >>"$META"
  mkdir -p "$WORK/out" "$CACHE/py3"
  "$PY" -m wheel pack -d "$WORK/out" "$ROOT" >/dev/null
  mv "$WORK"/out/*.whl "$REPACKED.tmp" && mv "$REPACKED.tmp" "$REPACKED"
fi

say "installing $(basename "$REPACKED") with ${PINS[*]}"
"$PY" -m pip install -q --force-reinstall --no-deps "$REPACKED"
"$PY" -m pip install -q "$REPACKED" "${PINS[@]}"
works || die "detectron2 installed but does not import; run: $PY -c 'import detectron2.modeling'"
say "done"
