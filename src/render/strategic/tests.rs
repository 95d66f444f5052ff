use serde_json::json;

use super::*;

fn deployment() -> Shape<'static> {
    // The shape borrows from the bundle, which lives for the whole run.
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(Schemas::default).shape_of("apps/v1", "Deployment").expect("Deployment is in the bundle")
}

fn merged(base: Value, patch: Value) -> Value {
    let mut target = base;
    merge(&mut target, patch, deployment()).expect("merges");
    target
}

fn web() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "finalizers": ["a", "b"]},
        "spec": {"template": {"spec": {
            "tolerations": [{"key": "x", "operator": "Exists"}],
            "containers": [
                {"name": "a", "image": "a:1",
                 "ports": [{"containerPort": 80}, {"containerPort": 81}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "args": ["x", "y"],
                 "securityContext": {"runAsNonRoot": true}},
                {"name": "b", "image": "b:1"}
            ],
            "volumes": [{"name": "v1", "configMap": {"name": "c1"}}]
        }}}
    })
}

fn containers(v: &Value) -> &Vec<Value> {
    v.pointer("/spec/template/spec/containers").and_then(Value::as_array).expect("containers")
}

#[test]
fn the_bundle_parses_and_knows_the_pod_spec() {
    let builtin = builtin().as_ref().expect("the merge bundle parses");
    let pod = &builtin.bundle.types["io.k8s.api.core.v1.PodSpec"];
    assert_eq!(pod["containers"].key.as_deref(), Some("name"));
    assert_eq!(pod["volumes"].strategy.as_deref(), Some("merge,retainKeys"));
    assert!(!pod.contains_key("tolerations"), "tolerations are atomic upstream: replaced, not merged");
    // A version the bundle does not list still finds its kind by group.
    assert!(Schemas::default().shape_of("apps/v1beta2", "Deployment").is_some());
    assert!(Schemas::default().shape_of("example.org/v1", "Widget").is_none());
}

#[test]
fn an_image_bump_keeps_every_other_field_of_the_container() {
    let out = merged(web(), json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:2"}]}}}}));
    let a = &containers(&out)[0];
    assert_eq!(a["image"], "a:2");
    assert_eq!(a["ports"], json!([{"containerPort": 80}, {"containerPort": 81}]));
    assert_eq!(a["securityContext"], json!({"runAsNonRoot": true}));
    assert_eq!(containers(&out)[1], json!({"name": "b", "image": "b:1"}), "the other container is kept");
}

#[test]
fn lists_merge_in_the_order_kustomize_gives() {
    // The same patch through `kubectl kustomize` (v5.5.0) gives exactly this.
    let out = merged(
        web(),
        json!({
            "metadata": {"finalizers": ["c", "a"]},
            "spec": {"template": {"spec": {
                "tolerations": [{"key": "y", "operator": "Exists"}],
                "containers": [
                    {"name": "c", "image": "c:1"},
                    {"name": "a", "image": "a:2", "ports": [{"containerPort": 82}],
                     "env": [{"name": "C", "value": "3"}, {"name": "A", "value": "9"}], "args": ["z"]}
                ],
                "volumes": [{"name": "v1", "secret": {"secretName": "s1"}}]
            }}}
        }),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    let names: Vec<&str> = containers(&out).iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["c", "a", "b"]);
    let a = &containers(&out)[1];
    assert_eq!(
        a["env"],
        json!([{"name": "C", "value": "3"}, {"name": "A", "value": "9"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(a["ports"], json!([{"containerPort": 82}, {"containerPort": 80}, {"containerPort": 81}]));
    assert_eq!(a["args"], json!(["z"]), "a list without a merge key is replaced");
    assert_eq!(out.pointer("/spec/template/spec/tolerations"), Some(&json!([{"key": "y", "operator": "Exists"}])));
    assert_eq!(
        out.pointer("/spec/template/spec/volumes"),
        Some(&json!([{"name": "v1", "configMap": {"name": "c1"}, "secret": {"secretName": "s1"}}]))
    );
}

#[test]
fn patch_directives_delete_and_replace_items_lists_and_maps() {
    let out = merged(
        web(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 80, "$patch": "delete"}]},
            {"name": "b", "$patch": "delete"}
        ]}}}}),
    );
    assert_eq!(containers(&out).len(), 1);
    assert_eq!(containers(&out)[0]["ports"], json!([{"containerPort": 81}]));

    let out = merged(
        web(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "z", "image": "z:1"}, {"$patch": "replace"}]}}}}),
    );
    assert_eq!(containers(&out), &vec![json!({"name": "z", "image": "z:1"})]);

    let out = merged(
        web(),
        json!({"spec": {"template": {"spec": {"$patch": "replace", "containers": [{"name": "z", "image": "z:1"}]}}}}),
    );
    assert_eq!(out.pointer("/spec/template/spec"), Some(&json!({"containers": [{"name": "z", "image": "z:1"}]})));

    let out = merged(
        web(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "securityContext": {"$patch": "delete"}}]}}}}),
    );
    assert!(containers(&out)[0].get("securityContext").is_none());
    let out = merged(
        web(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "securityContext": null}]}}}}),
    );
    assert!(containers(&out)[0].get("securityContext").is_none(), "null deletes a key");
}

#[test]
fn retain_keys_delete_from_primitive_list_and_set_element_order() {
    let out = merged(
        web(),
        json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "a:2"}],
                "volumes": [{"name": "v1", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s1"}}]
            }}}
        }),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a"]));
    let names: Vec<&str> = containers(&out).iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(
        out.pointer("/spec/template/spec/volumes"),
        Some(&json!([{"name": "v1", "secret": {"secretName": "s1"}}]))
    );
    assert!(!serde_json::to_string(&out).expect("json").contains('$'), "no directive is left: {out}");
}

#[test]
fn a_new_object_carries_out_its_directives_against_nothing() {
    let out = create(
        json!({"metadata": {"name": "w", "labels": null},
               "spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}, {"name": "b"}]}}}}),
        deployment(),
        "",
    )
    .expect("creates");
    assert_eq!(
        out,
        json!({"metadata": {"name": "w"}, "spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}})
    );
}

#[test]
fn bad_patches_name_the_pointer_and_the_fix() {
    let mut target = web();
    let err =
        merge(&mut target, json!({"spec": {"template": {"spec": {"containers": [{"image": "x:1"}]}}}}), deployment())
            .expect_err("no merge key");
    assert_eq!(
        err,
        "/spec/template/spec/containers/0: the item has no `name`, the key this list merges by; add it to say which item to change"
    );
    let err = merge(&mut target, json!({"spec": {"$patch": "remove"}}), deployment()).expect_err("bad directive");
    assert!(err.starts_with("/spec/$patch: `remove` is not a directive"), "{err}");
    let err = merge(&mut target, json!({"spec": {"$retainKey": ["a"]}}), deployment()).expect_err("unknown directive");
    assert!(err.starts_with("/spec/$retainKey: unknown directive"), "{err}");
    let err = merge(&mut target, json!({"spec": {"template": {"spec": {"containers": ["a"]}}}}), deployment())
        .expect_err("scalar item");
    assert!(err.contains("each item must be a map"), "{err}");
}

#[test]
fn custom_resources_merge_by_the_list_map_keys_of_their_crd() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "routes.example.org"},
        "spec": {"group": "example.org", "names": {"kind": "Route", "plural": "routes"}, "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {
                    "backends": {"type": "array", "x-kubernetes-list-type": "map",
                                 "x-kubernetes-list-map-keys": ["host", "port"],
                                 "items": {"type": "object", "properties": {"host": {"type": "string"}, "port": {"type": "integer"}, "weight": {"type": "integer"}}}},
                    "hosts": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "rules": {"type": "array", "items": {"type": "string"}}
                }}}
            }}}]
        }
    });
    let schemas = Schemas::with_crds(std::iter::once(&crd));
    let shape = schemas.shape_of("example.org/v1", "Route").expect("the CRD is known");
    let mut route = json!({"spec": {
        "backends": [{"host": "a", "port": 80, "weight": 1}, {"host": "a", "port": 81, "weight": 1}],
        "hosts": ["x"], "rules": ["r1"]
    }});
    merge(
        &mut route,
        json!({"spec": {"backends": [{"host": "a", "port": 81, "weight": 9}], "hosts": ["y"], "rules": ["r2"]}}),
        shape,
    )
    .expect("merges");
    assert_eq!(
        route["spec"],
        json!({"backends": [{"host": "a", "port": 81, "weight": 9}, {"host": "a", "port": 80, "weight": 1}],
               "hosts": ["y", "x"], "rules": ["r2"]})
    );
}

#[test]
fn secret_values_are_found_again_where_the_merge_moved_them() {
    let mut target = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "env": [{"name": "TOKEN", "value": "s3cr3t"}]}
    ]}}}});
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "z", "env": [{"name": "KEY", "value": "hunter2"}]},
        {"name": "a", "env": [{"name": "PLAIN", "value": "p"}]}
    ]}}}});
    let earlier = vec!["/spec/template/spec/containers/0/env/0/value".to_string()];
    let here = vec!["/spec/template/spec/containers/0/env/0/value".to_string()];
    let found = merge_tracking(&mut target, &earlier, patch, &here, deployment()).expect("merges");
    // z came first, a second; TOKEN is now a's second variable.
    assert_eq!(target.pointer("/spec/template/spec/containers/1/env/1/value"), Some(&json!("s3cr3t")));
    assert_eq!(target.pointer("/spec/template/spec/containers/0/env/0/value"), Some(&json!("hunter2")));
    assert!(found.contains(&"/spec/template/spec/containers/1/env/1/value".to_string()), "{found:?}");
    assert!(found.contains(&"/spec/template/spec/containers/0/env/0/value".to_string()), "{found:?}");
    assert!(!serde_json::to_string(&target).expect("json").contains(SECRET_MARK), "no mark is left");
}
