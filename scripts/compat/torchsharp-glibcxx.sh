#!/usr/bin/env bash
# TorchSharp 0.107's libLibTorchSharp.so needs GLIBCXX_3.4.32 (only for std::ios_base_library_init()),
# which Debian 12's libstdc++ (GCC 12) lacks. Where the system libstdc++ lacks it, patch the copy in the
# NuGet package cache so every build that copies it gets the fix:
#   - mark the GLIBCXX_3.4.32 requirement weak in .gnu.version_r,
#   - clear the version of the one symbol bound to it,
#   - add a tiny library defining that symbol, found through the existing $ORIGIN runpath.
# Idempotent; a no-op on systems whose libstdc++ already has the version.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION=GLIBCXX_3.4.32
SYMBOL=_ZSt21ios_base_library_initv
COMPAT=librscapret_glibcxx_compat.so
NUGET_ROOT="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
log() { printf '[torchsharp-compat] %s\n' "$*" >&2; }

# awk reads to the end (no early exit): under pipefail an early exit would SIGPIPE ldconfig and fail the script.
stdcxx=$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ && !found {print $NF; found=1}')
[ -n "$stdcxx" ] || stdcxx=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
if grep -qa "$VERSION" "$stdcxx"; then log "system libstdc++ has $VERSION: nothing to do"; exit 0; fi

shopt -s nullglob
libs=("$NUGET_ROOT"/torchsharp/*/runtimes/linux-x64/native/libLibTorchSharp.so)
[ ${#libs[@]} -gt 0 ] || { log "no TorchSharp native library under $NUGET_ROOT (run dotnet restore first)"; exit 1; }

tool=$(mktemp -d)
trap 'rm -rf "$tool"' EXIT
cc -O2 -o "$tool/elf-weaken-verneed" "$HERE/elf-weaken-verneed.c"
g++ -O2 -shared -fPIC -o "$tool/$COMPAT" "$HERE/ios_base_library_init.cpp"

for lib in "${libs[@]}"; do
  dir=$(dirname "$lib")
  if readelf -d "$lib" | grep "\[$COMPAT\]" >/dev/null && [ -f "$dir/$COMPAT" ]; then log "already patched: $lib"; continue; fi
  [ -f "$lib.orig" ] || cp -p "$lib" "$lib.orig"
  "$tool/elf-weaken-verneed" "$lib" "$VERSION" >/dev/null
  patchelf --clear-symbol-version "$SYMBOL" "$lib"
  install -m 0755 "$tool/$COMPAT" "$dir/$COMPAT"
  patchelf --add-needed "$COMPAT" "$lib"
  log "patched $lib"
done
