#!/usr/bin/env bash
# Installs what kiln builds and tests with, from Debian's packages; does nothing when all are present.
set -euo pipefail
packages=(build-essential cmake doctest-dev libstb-dev libcli11-dev nlohmann-json3-dev libbenchmark-dev python3-numpy python3-onnx)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_if_needed=""
  [ "$(id -u)" -eq 0 ] || sudo_if_needed="sudo"
  $sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq "${missing[@]}"
fi
