#!/usr/bin/env bash
# Sourced, on the lent GPU machine, by scripts/device-check.sh and scripts/device-train.sh: how kiln's
# programs find their libraries there, how a build there is configured, and the programs built here
# (scripts/device-prebuild.sh).
#
#   kiln_library_env LOG            sets kiln_env, the `env LD_LIBRARY_PATH=...` to put before kiln's programs
#   kiln_configure_command DIR      sets configure, the cmake command that configures DIR there (Release, no
#                                   examples; ninja and device-deps/ on a first configure), and exports
#                                   what CMake needs on that machine
#   unpack_prebuilt DIR LOG PROG... unpacks device-prebuilt/ into DIR; succeeds when every PROG is there and
#                                   finds every library it needs (else removes them, so a build starts clean)
# kiln_library_env and unpack_prebuilt append what they found to LOG.

# kiln's programs run with the toolkit's lib64 first on the library path (they were compiled against it),
# then the lib folders of PyTorch's nvidia-* wheels (cuDNN, where the toolkit has none). Only kiln's
# programs: PyTorch keeps its own libraries, which a path set for the whole script would override. Where the
# toolkit has no cuDNN, CUDNN_ROOT points a build at the wheel's.
kiln_library_env() {
  local log_file="$1" nvcc_path cuda_home wheel_libs
  nvcc_path="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  cuda_home="$(dirname "$(dirname "$(readlink -f "$nvcc_path")")")"
  wheel_libs="$(python3 -c 'import glob, os, nvidia
print(":".join(sorted(d for p in nvidia.__path__ for d in glob.glob(os.path.join(p, "*", "lib")))))' 2>/dev/null)"
  kiln_env=(env "LD_LIBRARY_PATH=$cuda_home/lib64${wheel_libs:+:$wheel_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  if [ ! -f "$cuda_home/include/cudnn.h" ] && [ -z "${CUDNN_ROOT:-}" ]; then
    CUDNN_ROOT="$(python3 -c 'import nvidia.cudnn as m; print(m.__path__[0])' 2>/dev/null)" && export CUDNN_ROOT
  fi
  echo "== libraries for kiln's programs: ${kiln_env[*]:1} CUDNN_ROOT=${CUDNN_ROOT:-}" >>"$log_file"
}

unpack_prebuilt() {
  local build_dir="$1" log_file="$2" source_dir libraries
  shift 2
  [ -f device-prebuilt/programs.tar.xz ] || return 1
  {
    echo "== prebuilt programs, built from $(cat device-prebuilt/commit 2>/dev/null)"
    mkdir -p "$build_dir" && tar -xJf device-prebuilt/programs.tar.xz -C "$build_dir"
    # The tests read assets/ through the path they were compiled with: here, a link to this checkout.
    source_dir="$(cat device-prebuilt/source-dir)"
    [ -e "$source_dir" ] || { mkdir -p "$(dirname "$source_dir")" && ln -s "$PWD" "$source_dir"; }
  } >>"$log_file" 2>&1
  # ldd names each library the loader would not find ("=> not found", "version `GLIBC_2.xx' not found").
  libraries="$(for program in "$@"; do
    echo "$program:"
    if [ -x "$build_dir/$program" ]; then "${kiln_env[@]}" ldd "$build_dir/$program"; else echo "  not found"; fi
  done 2>&1)"
  echo "$libraries" >>"$log_file"
  if grep -q "not found" <<<"$libraries"; then
    (cd "$build_dir" && rm -f "$@")
    return 1
  fi
}

# Where nvcc is not in /usr/local/cuda (where CMakeLists.txt looks) but on PATH, CUDACXX names it; CMake 4
# refuses package files that ask for policies older than 3.5, and CMAKE_POLICY_VERSION_MINIMUM lets them load
# (CMake 3 ignores it). A folder configured before keeps its configuration (a rerun on the same machine).
kiln_configure_command() {
  local build_dir="$1"
  if [ ! -x /usr/local/cuda/bin/nvcc ] && [ -z "${CUDACXX:-}" ] && command -v nvcc >/dev/null; then
    CUDACXX="$(command -v nvcc)"
    export CUDACXX
  fi
  export CMAKE_POLICY_VERSION_MINIMUM=3.5
  configure=(cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_EXAMPLES=OFF)
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    if command -v ninja >/dev/null; then configure+=(-G Ninja); fi
    # Where kiln's Debian packages are missing (the GPU machine), the copies scripts/device-deps.sh made.
    if [ -f device-deps/deps.cmake ]; then configure+=(-C device-deps/deps.cmake); fi
  fi
}
