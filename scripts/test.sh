#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test tier that exists
# (unit tests, and integration tests that drive the real binary over git repositories built by
# the tests). Needs: the Rust toolchain and git.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v git >/dev/null 2>&1; then
    echo "installing git" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq git; else sudo apt-get update -qq && sudo apt-get install -y -qq git; fi
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
