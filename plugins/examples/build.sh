#!/usr/bin/env bash
# Builds the Python and JavaScript transform components, the examples and the
# test plugins written in those languages, into OUT_DIR (default
# target/examples), with pinned toolchains installed under OUT_DIR:
# componentize-py from PyPI in a virtualenv, componentize-js from npm by the
# example's package-lock.json. A component is rebuilt only when its sources
# or the contract changed. The test suite calls this; so does .ci/run, first.
#
#   plugins/examples/build.sh [OUT_DIR]
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-$root/target/examples}" && cd "${1:-$root/target/examples}" && pwd)
# The contract versions' WIT; each component names the version it is for.
wit_dir() { echo "$root/wit/$1"; }
# One build at a time per output directory (tests may ask concurrently).
exec 9>"$out/.lock"
flock 9

# The hash of what a component is built from: its sources and the contract
# (every version's, to keep it simple).
stamp_of() {
    cat "$@" "$root"/wit/*/*.wit | sha256sum | cut -c1-64
}

# build NAME STAMP_SOURCES... -- COMMAND...: runs COMMAND (which writes
# $out/NAME.wasm) unless the stamp is unchanged.
build() {
    local name=$1; shift
    local sources=()
    while [ "$1" != "--" ]; do sources+=("$1"); shift; done; shift
    local stamp; stamp=$(stamp_of "${sources[@]}")
    if [ -f "$out/$name.wasm" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
        return
    fi
    echo "building $name" >&2
    "$@"
    echo "$stamp" > "$out/$name.stamp"
}

python_toolchain() {
    if [ ! -x "$out/py/bin/componentize-py" ] \
        || [ "$("$out/py/bin/componentize-py" --version)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
        python3 -m venv "$out/py"
        "$out/py/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
    fi
}

componentize_py() { # NAME DIR CONTRACT_VERSION
    python_toolchain
    (cd "$2" && "$out/py/bin/componentize-py" -d "$(wit_dir "$3")" -w transform componentize app -o "$out/$1.wasm.part")
    mv "$out/$1.wasm.part" "$out/$1.wasm"
}

js_toolchain() {
    local lock="$root/plugins/examples/javascript-transform/package-lock.json"
    if ! cmp -s "$lock" "$out/js/package-lock.json"; then
        mkdir -p "$out/js"
        cp "$root/plugins/examples/javascript-transform/package.json" "$lock" "$out/js/"
        (cd "$out/js" && npm ci --no-audit --no-fund --silent)
    fi
}

componentize_js() { # NAME SOURCE CONTRACT_VERSION
    js_toolchain
    cp "$root/plugins/examples/javascript-transform/build.mjs" "$out/js/build.mjs"
    cp "$2" "$out/js/transform.js"
    (cd "$out/js" && BITCRAM_WIT_DIR="$(wit_dir "$3")" node build.mjs "$out/$1.wasm.part" >/dev/null)
    mv "$out/$1.wasm.part" "$out/$1.wasm"
}

py="$root/plugins/examples/python-transform"
js="$root/plugins/examples/javascript-transform"
build python-transform "$py"/app.py "$py"/transformer.py "$py"/merge.py -- componentize_py python-transform "$py" 0.1.0
build javascript-transform "$js"/transform.js "$js"/build.mjs "$js"/package-lock.json -- componentize_js javascript-transform "$js"/transform.js 0.2.0
nosy="$root/plugins/test-plugins"
build python-nosy "$nosy"/python-nosy/app.py "$nosy"/python-nosy/transformer.py -- componentize_py python-nosy "$nosy"/python-nosy 0.1.0
build javascript-nosy "$nosy"/javascript-nosy/transform.js "$js"/build.mjs "$js"/package-lock.json -- componentize_js javascript-nosy "$nosy"/javascript-nosy/transform.js 0.1.0
