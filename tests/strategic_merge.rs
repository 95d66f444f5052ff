//! Layers merge as strategic merge patches: each case is rendered by cairn (a base layer and an
//! overlay layer) and by the real kustomize (the same files as a base kustomization and an overlay
//! whose `patches` are the overlay's documents), and the objects are compared as data.

mod common;

use common::{Fixture, kustomize};

const CONFIG: &str =
    "environments:\n  e:\n    layers: [base, overlay]\n    target:\n      local: { path: .cairn/live/e }\n";

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  finalizers: [example.org/a, example.org/b]
spec:
  replicas: 2
  selector:
    matchLabels: { app: web }
  template:
    metadata:
      labels: { app: web }
    spec:
      tolerations: [{ key: x, operator: Exists }]
      initContainers:
        - { name: migrate, image: "registry.example.org/web:1.0.0", args: [migrate] }
      containers:
        - name: web
          image: registry.example.org/web:1.0.0
          args: [serve, --verbose]
          ports:
            - { containerPort: 8080, protocol: TCP }
            - { containerPort: 9090, protocol: TCP }
          env:
            - { name: LOG_LEVEL, value: info }
            - { name: REGION, value: eu-west-1 }
          resources:
            requests: { cpu: 100m, memory: 128Mi }
          securityContext:
            runAsNonRoot: true
            allowPrivilegeEscalation: false
          livenessProbe:
            httpGet: { path: /healthz, port: 8080 }
          volumeMounts:
            - { name: config, mountPath: /etc/web }
        - name: sidecar
          image: registry.example.org/proxy:3.1
      volumes:
        - name: config
          configMap: { name: web-config }
        - name: cache
          emptyDir: {}
"#;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: { app: web }
  ports:
    - { name: http, port: 80, targetPort: 8080 }
    - { name: metrics, port: 9090, targetPort: 9090 }
"#;

/// Renders `patches` over the Deployment and the Service with cairn and with kustomize, and
/// compares every object.
fn same_as_kustomize(case: &str, patches: &[&str]) {
    let f = Fixture::new();
    f.write("cairn.yaml", CONFIG);
    f.write("base/deployment.yaml", DEPLOYMENT);
    f.write("base/service.yaml", SERVICE);
    let mut patch_list = String::new();
    for (i, patch) in patches.iter().enumerate() {
        f.write(&format!("overlay/patch-{i}.yaml"), patch);
        f.write(&format!("k/overlay/patch-{i}.yaml"), patch);
        patch_list.push_str(&format!("  - path: patch-{i}.yaml\n"));
    }
    f.write("k/base/deployment.yaml", DEPLOYMENT);
    f.write("k/base/service.yaml", SERVICE);
    f.write("k/base/kustomization.yaml", "resources: [deployment.yaml, service.yaml]\n");
    f.write("k/overlay/kustomization.yaml", &format!("resources: [../base]\npatches:\n{patch_list}"));
    f.commit(case);
    let rendered = f.json(&["render", "--env", "e", "--format", "json"], 0);
    let theirs = kustomize::build(&f.join("k/overlay"));
    kustomize::assert_same_objects(case, &kustomize::cairn_objects(&rendered), &theirs);
}

#[test]
fn an_image_bump_keeps_the_rest_of_the_container() {
    same_as_kustomize(
        "image bump",
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web, namespace: shop }\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: registry.example.org/web:2.0.0\n",
        ],
    );
}

#[test]
fn keyed_lists_merge_in_kustomizes_order_and_other_lists_replace() {
    same_as_kustomize(
        "keyed lists",
        &[r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  finalizers: [example.org/c, example.org/a]
spec:
  replicas: 5
  template:
    spec:
      tolerations: [{ key: dedicated, operator: Exists }]
      containers:
        - name: debug
          image: busybox:1.36
        - name: web
          args: [serve]
          ports:
            - { containerPort: 7070, protocol: TCP }
          env:
            - { name: FEATURE, value: "on" }
            - { name: LOG_LEVEL, value: debug }
          resources:
            limits: { memory: 256Mi }
          volumeMounts:
            - { name: cache, mountPath: /var/cache }
      volumes:
        - name: config
          secret: { secretName: web-config }
        - name: extra
          emptyDir: {}
"#],
    );
}

#[test]
fn patch_directives_delete_items_and_replace_lists_and_maps() {
    same_as_kustomize(
        "directives",
        &[
            r#"apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  template:
    spec:
      initContainers:
        - { name: migrate, $patch: delete }
      containers:
        - name: web
          ports:
            - { containerPort: 9090, protocol: TCP, $patch: delete }
          securityContext:
            $patch: replace
            readOnlyRootFilesystem: true
          livenessProbe: null
        - { name: sidecar, $patch: delete }
      volumes:
        - { name: only, emptyDir: {} }
        - $patch: replace
"#,
            "apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: shop }\nspec:\n  ports:\n    - { port: 9090, $patch: delete }\n    - { name: https, port: 443, targetPort: 8443 }\n",
        ],
    );
}

#[test]
fn a_map_replaced_whole_and_null_deleting_keys() {
    same_as_kustomize(
        "map replace",
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web, namespace: shop }\nspec:\n  replicas: null\n  template:\n    spec:\n      $patch: replace\n      containers:\n        - { name: only, image: 'registry.example.org/only:1' }\n",
        ],
    );
}

#[test]
fn a_kind_without_merge_information_merges_as_a_json_merge_patch_and_a_crd_gives_its_keys() {
    let f = Fixture::new();
    f.write("cairn.yaml", CONFIG);
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: routes.example.org }
spec:
  group: example.org
  names: { kind: Route, plural: routes }
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                backends:
                  type: array
                  x-kubernetes-list-type: map
                  x-kubernetes-list-map-keys: [host]
                  items: { type: object, properties: { host: { type: string }, weight: { type: integer } } }
"#;
    f.write("base/crd.yaml", crd);
    let objects = "apiVersion: example.org/v1\nkind: Route\nmetadata: { name: r, namespace: shop }\nspec:\n  backends: [{ host: a, weight: 1 }, { host: b, weight: 1 }]\n---\napiVersion: other.example.org/v1\nkind: Widget\nmetadata: { name: w, namespace: shop }\nspec:\n  parts: [{ name: a, size: 1 }, { name: b, size: 1 }]\n";
    f.write("base/objects.yaml", objects);
    let patches = "apiVersion: example.org/v1\nkind: Route\nmetadata: { name: r, namespace: shop }\nspec:\n  backends: [{ host: b, weight: 9 }]\n---\napiVersion: other.example.org/v1\nkind: Widget\nmetadata: { name: w, namespace: shop }\nspec:\n  parts: [{ name: b, size: 9 }]\n";
    f.write("overlay/patches.yaml", patches);
    f.commit("custom kinds");
    let v = f.json(&["render", "--env", "e", "--format", "json"], 0);
    let body = |kind: &str| {
        v[0]["objects"].as_array().expect("objects").iter().find(|o| o["id"]["kind"] == kind).expect(kind)["body"]
            .clone()
    };
    assert_eq!(
        body("Route")["spec"]["backends"],
        serde_json::json!([{"host": "b", "weight": 9}, {"host": "a", "weight": 1}])
    );
    assert_eq!(
        body("Widget")["spec"]["parts"],
        serde_json::json!([{"name": "b", "size": 9}]),
        "no schema: the list is replaced"
    );
}

#[test]
fn a_keyed_list_item_without_its_key_is_an_error_naming_the_file_and_the_fix() {
    let f = Fixture::new();
    f.write("cairn.yaml", CONFIG);
    f.write("base/deployment.yaml", DEPLOYMENT);
    f.write(
        "overlay/web.yaml",
        "# the image of which container?\napiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web, namespace: shop }\nspec:\n  template:\n    spec:\n      containers:\n        - image: registry.example.org/web:2.0.0\n",
    );
    f.commit("an overlay without the container's name");
    let (code, out, err) = f.run(&["render", "--env", "e"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("overlay/web.yaml:2: cannot merge this document over Deployment.apps shop/web: /spec/template/spec/containers/0: the item has no `name`, the key this list merges by; add it to say which item to change"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    let (code, _, err) = f.run(&["apply", "--env", "e"]);
    assert_eq!(code, 2, "{err}");
    assert!(!f.join(".cairn").exists(), "nothing is written");
}

#[test]
fn a_secret_in_a_merged_list_is_masked_where_the_merge_moves_it() {
    const TOKEN: &str = "tok-9f8e7d6c5b4a";
    let f = Fixture::new();
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write("cairn.yaml", CONFIG);
    f.write(".sops.yaml", &format!("creation_rules:\n  - age: {public}\n    encrypted_regex: ^value$\n"));
    f.write("base/deployment.yaml", DEPLOYMENT);
    // The overlay adds a container before `web` and a secret variable to `web`: both move.
    f.write(
        "overlay/web.yaml",
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: debug\n          image: busybox:1.36\n        - name: web\n          env:\n            - name: TOKEN\n              value: {TOKEN}\n"),
    );
    common::sops_encrypt(f.path(), &f.join("overlay/web.yaml"), &[]);
    f.commit("a secret token for web");
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    let rendered = f.json(&["render", "--env", "e", "--format", "json"], 0);
    let web = &rendered[0]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["id"]["kind"] == "Deployment")
        .expect("web")["body"];
    let containers = web["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    assert_eq!(containers[0]["name"], "debug");
    let env = containers[1]["env"].as_array().expect("env of web");
    let token = env.iter().find(|e| e["name"] == "TOKEN").expect("TOKEN is merged into web's env");
    assert!(token["value"].as_str().is_some_and(|v| v.starts_with("<secret")), "masked where it moved: {token}");
    assert_eq!(env[1]["name"], "LOG_LEVEL", "the earlier variables follow: {env:?}");
    let mut outputs = serde_json::to_string(&rendered).expect("json");
    outputs.push_str(&f.outputs_of(&[
        &["render", "--env", "e"][..],
        &["plan", "--env", "e"],
        &["plan", "--env", "e", "--format", "json"],
        &["apply", "--env", "e"],
    ]));
    assert!(
        !outputs.contains(TOKEN) && !outputs.contains(&common::b64(TOKEN)),
        "no output holds the token or its base64"
    );
    // The target holds the real value: the secret was applied, only never shown.
    let live = f.read(".cairn/live/e/objects/Deployment.apps/shop/web.json");
    assert!(live.contains(TOKEN), "the applied Deployment carries the token");
}
