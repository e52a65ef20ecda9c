#!/usr/bin/env bash
# Copies what kiln's build takes from this machine's Debian packages into device-deps/ (git-ignored), so
# that a machine without them (the lent GPU machine: no apt, no network) can configure and build kiln
# from the working tree alone:
#
#   bash scripts/device-deps.sh                 # here, where scripts/install-deps.sh has run
#   cmake -S . -B build-device -C device-deps/deps.cmake ...   # there (scripts/device-check.sh does it)
#
# What it copies (a few MiB), keeping the packages' layout under /usr, so that their CMake package files
# find the headers and libraries relative to themselves:
#   nlohmann-json3-dev   headers + CMake package files (find_package(nlohmann_json))
#   doctest-dev          header + CMake package files and doctest.cmake (find_package(doctest), include(doctest))
#   libbenchmark-dev,    header, CMake package files and the libraries they name (find_package(benchmark)
#   libbenchmark1debian  checks that libbenchmark.so.1.7.1 and libbenchmark_main.a exist)
#   libcli11-dev         headers (+ its CMake package files; kiln includes <CLI/CLI.hpp> directly)
#   libstb-dev           headers only: kiln compiles stb_image's implementation itself
#                        (data/stb_image_impl.cpp) and links no libstb
# and writes device-deps/deps.cmake, an initial cache for `cmake -C` that points find_package at the
# copies and puts device-deps/include on the C++ include path (for <stb/...> and <CLI/...>, which no
# find_package provides). Nothing else changes: a configure without -C finds the system's packages as
# before.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nlohmann-json3-dev doctest-dev libbenchmark-dev libbenchmark1debian libcli11-dev libstb-dev)
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || {
    echo "device-deps.sh: $package is not installed here (run scripts/install-deps.sh first)" >&2
    exit 1
  }
done

destination=device-deps
rm -rf "$destination"
mkdir -p "$destination"
for package in "${packages[@]}"; do
  while IFS= read -r path; do
    # Files and symbolic links (libbenchmark.so -> libbenchmark.so.1debian), not folders; no docs, no
    # pkg-config files (kiln's CMake does not use them), and no stb libraries (see above).
    [[ -f "$path" || -L "$path" ]] || continue
    case "$path" in
      /usr/share/doc/* | /usr/share/lintian/* | /usr/share/man/* | */pkgconfig/* | */libstb.*) continue ;;
      /usr/*) ;;
      *) continue ;;
    esac
    relative="${path#/usr/}"
    mkdir -p "$destination/$(dirname "$relative")"
    cp -P "$path" "$destination/$relative"
  done < <(dpkg -L "$package")
done

# Debian's doctest package files name their prefix absolutely (set(_IMPORT_PREFIX "/usr")); the copy
# computes it from where it lies (lib/cmake/doctest -> three folders up), as the other packages' do.
doctest_targets="$destination/lib/cmake/doctest/doctestTargets.cmake"
# shellcheck disable=SC2016  # ${CMAKE_CURRENT_LIST_DIR} is CMake's, written as it stands
sed -i 's|^set(_IMPORT_PREFIX "/usr")$|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
  "$doctest_targets"
grep -q 'CMAKE_CURRENT_LIST_DIR}/../../..' "$doctest_targets" || {
  echo "device-deps.sh: $doctest_targets did not take the relative prefix (its text changed?)" >&2
  exit 1
}
# No other package file may still name /usr: on the GPU machine that folder lacks them. Exempt is the
# "/usr move" guard CMake writes into benchmark's files (the line naming the original folder, and the
# one that runs only when the file is loaded from that very folder).
find "$destination" -name '*.cmake' -exec awk '
  previous ~ /_realCurr STREQUAL _realOrig/ { previous = $0; next }
  /"\/usr/ && !/_realOrig/ && !/^ *#/ { print FILENAME ": " $0; absolute = 1 }
  { previous = $0 }
  END { exit absolute }' {} + || {
  echo "device-deps.sh: the package files above name /usr absolutely; make them relative first" >&2
  exit 1
}

# The package-file folders, found rather than assumed (the multiarch folder is x86_64-linux-gnu here).
package_dir() {  # the folder holding $1Config.cmake, relative to device-deps/
  local config
  config="$(find "$destination" -name "$1Config.cmake" -print -quit)"
  [ -n "$config" ] || { echo "device-deps.sh: no $1Config.cmake was copied" >&2; exit 1; }
  dirname "${config#"$destination"/}"
}
nlohmann_json_dir="$(package_dir nlohmann_json)"
doctest_dir="$(package_dir doctest)"
benchmark_dir="$(package_dir benchmark)"

cat >"$destination/deps.cmake" <<EOF
# Initial cache (cmake -C device-deps/deps.cmake) for a machine without kiln's Debian packages: written by
# scripts/device-deps.sh. Paths are relative to this file, so device-deps/ may move with the working tree.
get_filename_component(_kiln_deps "\${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
set(CMAKE_PREFIX_PATH "\${_kiln_deps}" CACHE PATH "kiln's carried build dependencies (device-deps/)")
set(nlohmann_json_DIR "\${_kiln_deps}/$nlohmann_json_dir" CACHE PATH "")
set(doctest_DIR "\${_kiln_deps}/$doctest_dir" CACHE PATH "")
set(benchmark_DIR "\${_kiln_deps}/$benchmark_dir" CACHE PATH "")
# <stb/...> and <CLI/...> are found by include path alone; -isystem, as /usr/include would be (their
# warnings are not kiln's).
set(CMAKE_CXX_FLAGS "-isystem \${_kiln_deps}/include" CACHE STRING "")
EOF

echo "device-deps.sh: $(du -sh "$destination" | cut -f1) in $destination/ ($(find "$destination" -type f | wc -l) files)"
