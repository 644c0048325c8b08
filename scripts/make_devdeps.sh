#!/usr/bin/env bash
# Makes ./.devdeps: the prefix of Abseil, nlohmann-json, CLI11 and GoogleTest that the libtorch-only build needs
# on the GPU machine (which has none of them and no package registry; scripts/device_check.sh uses it). The
# files are copied from this Debian 12 machine's installed packages (scripts/setup.sh installs them): headers,
# Abseil's shared libraries, GoogleTest's static ones and the CMake config files, which find their prefix from
# their own location, so the folder works wherever it lands. ~10 MB; git-ignored; name it in the device tool's
# `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-.devdeps}"
PACKAGES=(libabsl-dev libabsl20220623 nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev)
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
echo "# Prefix for the libtorch-only build on the GPU machine (scripts/device_check.sh), copied from Debian 12 packages:" \
  >"$OUT_DIR/MANIFEST.txt"
for pkg in "${PACKAGES[@]}"; do
  version="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)" || {
    echo "package $pkg is not installed (apt-get install $pkg)" >&2
    exit 1
  }
  echo "$pkg $version" >>"$OUT_DIR/MANIFEST.txt"
  # Files and symlinks only; no documentation, pkg-config files, sources or Abseil's static libraries (the
  # build links Abseil's shared ones).
  dpkg -L "$pkg" | while read -r f; do
    [[ -f "$f" || -L "$f" ]] || continue
    case "$f" in
      /usr/share/doc/* | /usr/share/lintian/* | */pkgconfig/* | /usr/src/*) continue ;;
      */libabsl_*.a) continue ;;
    esac
    mkdir -p "$OUT_DIR$(dirname "$f")"
    cp -a "$f" "$OUT_DIR$f"
  done
done
# Every one of those libraries' config files must sit in the prefix: fail early if a package changed its layout.
for dir in lib/x86_64-linux-gnu/cmake/absl lib/x86_64-linux-gnu/cmake/GTest share/cmake/nlohmann_json share/cmake/CLI11; do
  [[ -d "$OUT_DIR/usr/$dir" ]] || { echo "$OUT_DIR/usr/$dir is missing" >&2; exit 1; }
done
echo "$OUT_DIR: $(du -sh "$OUT_DIR" | cut -f1) ($(find "$OUT_DIR" -type f | wc -l) files)"
