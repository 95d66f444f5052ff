#!/usr/bin/env bash
# A real Kubernetes API server for cairn's cluster tests: etcd and kube-apiserver on loopback,
# built only from Debian's own packages (etcd-server; kube-apiserver compiled from Debian's
# `kubernetes` source package with Debian's golang-go). The built binary is cached in
# $CAIRN_KUBE_BIN (default /opt/kube-test/bin): the first install takes 5-10 minutes on 2 cores,
# later ones nothing; a start takes a few seconds.
#
#   scripts/kube-test.sh install            install etcd and build kube-apiserver if missing
#   scripts/kube-test.sh start DIR PORT     start a server whose state lives in DIR, API on PORT
#                                           (etcd on PORT+1, PORT+2); writes DIR/kubeconfig with
#                                           contexts `admin` (cluster-admin) and `nobody` (no rights)
#   scripts/kube-test.sh stop DIR           stop it (also done by the tests when they finish)
set -euo pipefail

BIN=${CAIRN_KUBE_BIN:-/opt/kube-test/bin}
SRC=${CAIRN_KUBE_SRC:-/opt/kube-test/src}
VERSION=1.20.2

say() { echo "[kube-test] $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_server() {
  need_packages etcd-server openssl curl ca-certificates
  # The tests make drift and conflicts with the real kubectl.
  command -v kubectl >/dev/null 2>&1 || need_packages kubernetes-client
  [ -x "$BIN/kube-apiserver" ] && return 0
  need_packages golang-go make rsync jq dpkg-dev golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
  local tree="$SRC/kubernetes-$VERSION"
  if [ ! -d "$tree" ]; then
    if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "really$VERSION"; then
      say "enabling Debian source packages"
      if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
          as_root tee /etc/apt/sources.list.d/cairn-kube-test-src.sources >/dev/null
      else
        grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' |
          as_root tee /etc/apt/sources.list.d/cairn-kube-test-src.list >/dev/null
      fi
      as_root apt-get update -qq
    fi
    as_root mkdir -p "$SRC" && as_root chown "$(id -u)" "$SRC"
    (cd "$SRC" && apt-get source -qq --download-only kubernetes >/dev/null)
    local dsc
    dsc=$(ls -t "$SRC"/kubernetes_*really"$VERSION"*.dsc | head -1)
    (cd "$SRC" && rm -rf "$tree.partial" && dpkg-source -x "$dsc" "$tree.partial" >/dev/null)
    # The vendored reflect2 1.0.1 crashes on Go >= 1.18; Debian ships fixed copies.
    local lib
    for lib in github.com/modern-go/reflect2 github.com/json-iterator/go; do
      rm -rf "$tree.partial/vendor/$lib"
      cp -rL "/usr/share/gocode/src/$lib" "$tree.partial/vendor/$lib"
      find "$tree.partial/vendor/$lib" -name '*_test.go' -delete
    done
    mv "$tree.partial" "$tree"
  fi
  say "building kube-apiserver $VERSION with $(go version | cut -d' ' -f3) (5-10 minutes on 2 cores, once per machine)"
  if ! (cd "$tree" && HOME=${HOME:-/root} make WHAT=cmd/kube-apiserver >"$SRC/build.log" 2>&1); then
    tail -30 "$SRC/build.log" >&2
    exit 1
  fi
  as_root mkdir -p "$BIN"
  as_root command install -m755 "$tree/_output/bin/kube-apiserver" "$BIN/kube-apiserver"
}

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

certificates() {
  local d=$1/pki
  [ -s "$d/server.crt" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cairn-test-ca" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
    -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  # Static tokens: an administrator, and a user RBAC gives no rights at all.
  {
    echo "$(openssl rand -hex 24),admin,admin,system:masters"
    echo "$(openssl rand -hex 24),nobody,nobody"
  } >"$d/tokens.csv"
  chmod 600 "$d"/*.key "$d/tokens.csv"
}

kubeconfig() {
  local dir=$1 port=$2
  local admin nobody
  admin=$(sed -n 1p "$dir/pki/tokens.csv" | cut -d, -f1)
  nobody=$(sed -n 2p "$dir/pki/tokens.csv" | cut -d, -f1)
  cat >"$dir/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 "$dir/pki/ca.crt")
users:
- name: admin
  user: {token: $admin}
- name: nobody
  user: {token: $nobody}
contexts:
- name: admin
  context: {cluster: test, user: admin, namespace: default}
- name: nobody
  context: {cluster: test, user: nobody, namespace: default}
current-context: admin
YAML
  chmod 600 "$dir/kubeconfig"
}

start() {
  local dir=${1:?usage: kube-test.sh start DIR PORT} port=${2:?usage: kube-test.sh start DIR PORT}
  install_server
  mkdir -p "$dir"
  certificates "$dir"
  kubeconfig "$dir" "$port"
  running "$dir/apiserver.pid" && return 0
  local etcd_port=$((port + 1)) peer_port=$((port + 2))
  if ! running "$dir/etcd.pid"; then
    setsid etcd --name test --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-cluster "test=http://127.0.0.1:$peer_port" --log-level warn --logger zap \
      >"$dir/etcd.log" 2>&1 </dev/null &
    echo $! >"$dir/etcd.pid"
  fi
  local p=$dir/pki
  setsid "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" --insecure-port=0 \
    --tls-cert-file="$p/server.crt" --tls-private-key-file="$p/server.key" --client-ca-file="$p/ca.crt" \
    --token-auth-file="$p/tokens.csv" --authorization-mode=RBAC --anonymous-auth=false \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$p/sa.pub" \
    --service-account-signing-key-file="$p/sa.key" --api-audiences=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/16 --enable-priority-and-fairness=false --endpoint-reconciler-type=none \
    --cert-dir="$dir/certs" --profiling=false --v=1 \
    >"$dir/apiserver.log" 2>&1 </dev/null &
  echo $! >"$dir/apiserver.pid"
  local token
  token=$(sed -n 1p "$p/tokens.csv" | cut -d, -f1)
  for _ in $(seq 1 240); do
    if [ "$(curl -s --cacert "$p/ca.crt" -H "Authorization: Bearer $token" "https://127.0.0.1:$port/readyz" 2>/dev/null)" = ok ]; then
      return 0
    fi
    running "$dir/apiserver.pid" || { tail -20 "$dir/apiserver.log" >&2; stop "$dir"; exit 1; }
    sleep 0.25
  done
  say "the API server was not ready after 60 s"
  tail -20 "$dir/apiserver.log" >&2
  stop "$dir"
  exit 1
}

stop() {
  local dir=${1:?usage: kube-test.sh stop DIR} name pid
  for name in apiserver etcd; do
    if running "$dir/$name.pid"; then
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}

case "${1:-}" in
  install) install_server ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: scripts/kube-test.sh install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
