#!/usr/bin/env bash
# Vendor the studio's front-end libraries from npm into the package data, pinned by web/package-lock.json.
#
# The page loads nothing from a CDN: three.js and the three addons it uses are copied, unmodified, into
# src/audio2blendshape/preview/web/vendor/ (checked in). Run this after changing the version in
# web/package.json (then `npm install --package-lock-only` in web/ to update the lock), and commit the output.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/src/audio2blendshape/preview/web/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp "$repo/web/package.json" "$repo/web/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
three="$work/node_modules/three"

rm -rf "$out"
mkdir -p "$out/addons/loaders" "$out/addons/controls" "$out/addons/utils"
cp "$three/build/three.module.js" "$three/build/three.core.js" "$out/"
cp "$three/examples/jsm/loaders/GLTFLoader.js" "$out/addons/loaders/"
cp "$three/examples/jsm/controls/OrbitControls.js" "$out/addons/controls/"
cp "$three/examples/jsm/utils/BufferGeometryUtils.js" "$three/examples/jsm/utils/SkeletonUtils.js" \
  "$out/addons/utils/"
cp "$three/LICENSE" "$out/LICENSE.three.txt"
version="$(node -p "require('$three/package.json').version")"
printf 'three %s (npm), files copied unmodified by scripts/vendor_web.sh\n' "$version" > "$out/VERSIONS.txt"
echo "vendored three $version into $out"
