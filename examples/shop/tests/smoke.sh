#!/bin/sh
# Staging's acceptance check (cairn.yaml `verify:`): cairn runs it after `apply --verify`, with
# CAIRN_ENVIRONMENT, CAIRN_RELEASE and CAIRN_COMMIT set. On the embedded local target the live
# state is a directory, so the check reads what was applied; against a real cluster this would
# call the service (curl https://staging.shop.example/healthz) instead.
set -eu
live="../.cairn/live/$CAIRN_ENVIRONMENT/objects/Deployment.apps/shop/web.json"
test -f "$live" || { echo "no web Deployment in $CAIRN_ENVIRONMENT"; exit 1; }
grep -q '"image"' "$live" || { echo "the web Deployment has no image"; exit 1; }
echo "release $CAIRN_RELEASE of $CAIRN_ENVIRONMENT: web is deployed"
