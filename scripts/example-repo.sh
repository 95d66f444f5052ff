#!/usr/bin/env bash
# Builds examples/shop into a git repository with a short, realistic history, for trying
# `cairn check`, `apply --plan`, `notes`, `status` and `metrics` by hand:
#
#   scripts/example-repo.sh /tmp/shop && cd /tmp/shop && cairn notes --env production
#
# Commits (pinned authors and dates): the initial configuration, a production image bump, a
# feature flag switched on, a cart limit raised — each approved, in `Approved-by:` trailers, by the
# owners the example's production-approvals policy asks for (a platform-team member and an SRE).
# Production is applied after each commit through the gate, so release records and notes exist.
set -euo pipefail
dest=${1:?usage: scripts/example-repo.sh DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
cairn=${CAIRN:-$here/target/release/cairn}
[ -x "$cairn" ] || cairn=$here/target/debug/cairn
[ -x "$cairn" ] || { echo "build cairn first (cargo build --release)" >&2; exit 2; }
[ -e "$dest" ] && { echo "$dest exists; choose a new directory" >&2; exit 2; }

# The example's Secret is encrypted for the published, example-only key.
export SOPS_AGE_KEY="$(cat "$here/examples/shop/keys/example-only.agekey")"
mkdir -p "$dest"
cp -R "$here/examples/shop/." "$dest/"
rm -rf "$dest/.cairn"
cd "$dest"
git init -q -b main
n=0
commit() { # commit AUTHOR MESSAGE
  n=$((n + 1))
  local when="2026-03-0${n}T10:00:00+00:00"
  git add -A
  GIT_AUTHOR_NAME="$1" GIT_AUTHOR_EMAIL="$(echo "$1" | tr 'A-Z ' 'a-z.')@example.org" \
  GIT_COMMITTER_NAME="$1" GIT_COMMITTER_EMAIL="$(echo "$1" | tr 'A-Z ' 'a-z.')@example.org" \
  GIT_AUTHOR_DATE="$when" GIT_COMMITTER_DATE="$when" git commit -q -m "$2"
  CAIRN_ACTOR=release-bot "$cairn" apply --env production --rev HEAD >/dev/null
}

approved="Approved-by: Grace Hopper <grace@example.org>
Approved-by: Margaret Hamilton <margaret@example.org>"
commit "Ada Lovelace" "chore: initial shop configuration

$approved"
sed -i 's|shop/web:1.3.2|shop/web:1.4.0|' environments/production/web.yaml
commit "Ada Lovelace" "feat(web): release 1.4.0 to production

$approved"
sed -i 's|checkout-v2: "off"|checkout-v2: "on"|' base/features.yaml
commit "Alan Turing" "feat: switch on the new checkout

$approved"
sed -i 's|maxCartItems: 50|maxCartItems: 80|' base/app-settings.yaml
commit "Alan Turing" "fix: raise the cart limit for the sale

$approved"
echo "built $dest: $(git rev-list --count HEAD) commits, production at release $n"
