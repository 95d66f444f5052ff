//! kustomize layers: each case is a small kustomization tree the test writes, rendered by cairn
//! (as an environment's layer) and by the real kustomize (`kubectl kustomize`), and compared
//! object for object as data. Secret values are masked in cairn's render, so Secrets are compared
//! without their `data` (a generated Secret's name carries kustomize's hash of the data, so the
//! name still proves the data equal); the values themselves are checked on the applied target.

mod common;

use common::{Fixture, kustomize};
use serde_json::Value;

/// Writes `files` under `k/`, renders the environment whose layer is `k/<layer>`, builds the same
/// directory with kustomize and compares.
fn same_as_kustomize(case: &str, layer: &str, files: &[(&str, &str)]) -> Fixture {
    let f = Fixture::new();
    f.write(
        "cairn.yaml",
        &format!("environments:\n  e:\n    layers: [k/{layer}]\n    target:\n      local: {{ path: .cairn/live/e }}\n"),
    );
    f.write(".gitignore", ".cairn/\n");
    for (path, text) in files {
        f.write(&format!("k/{path}"), text);
    }
    f.commit(case);
    let rendered = f.json(&["render", "--env", "e", "--format", "json"], 0);
    let theirs = kustomize::build(&f.join(&format!("k/{layer}")));
    let ours = kustomize::cairn_objects(&rendered);
    kustomize::assert_same_objects(case, &without_secret_data(ours), &without_secret_data(theirs));
    f
}

fn without_secret_data(objects: Vec<Value>) -> Vec<Value> {
    objects
        .into_iter()
        .map(|mut o| {
            if o["kind"] == "Secret"
                && let Some(map) = o.as_object_mut()
            {
                map.remove("data");
                map.remove("stringData");
            }
            o
        })
        .collect()
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: { app: web, tier: frontend }
spec:
  replicas: 2
  selector:
    matchLabels: { app: web }
  template:
    metadata:
      labels: { app: web }
    spec:
      serviceAccountName: web
      initContainers:
        - { name: migrate, image: "registry.example.org/web:1.0.0", args: [migrate] }
      containers:
        - name: web
          image: registry.example.org/web:1.0.0
          ports: [{ containerPort: 8080 }]
          env:
            - { name: LOG_LEVEL, value: info }
            - name: PASSWORD
              valueFrom: { secretKeyRef: { name: credentials, key: password } }
          envFrom:
            - configMapRef: { name: settings }
          volumeMounts: [{ name: config, mountPath: /etc/web }]
        - name: proxy
          image: registry.example.org:5000/proxy:3.1
      volumes:
        - name: config
          configMap: { name: settings }
        - name: data
          persistentVolumeClaim: { claimName: data }
"#;

const OTHERS: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources: { requests: { storage: 1Gi } }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
rules:
  - { apiGroups: [""], resources: [configmaps], resourceNames: [settings], verbs: [get] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: web-reader
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader }
subjects:
  - { kind: ServiceAccount, name: web }
  - { kind: ServiceAccount, name: default }
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  minReplicas: 2
  maxReplicas: 5
"#;

const BASE: &str = r#"resources: [deployment.yaml, others.yaml]
configMapGenerator:
  - name: settings
    literals: [LOG_LEVEL=info, "GREETING='hello world'"]
secretGenerator:
  - name: credentials
    literals: [password=s3cr3t-literal]
"#;

fn base_files() -> Vec<(&'static str, &'static str)> {
    vec![("base/kustomization.yaml", BASE), ("base/deployment.yaml", DEPLOYMENT), ("base/others.yaml", OTHERS)]
}

fn with(mut files: Vec<(&'static str, &'static str)>, more: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    files.extend_from_slice(more);
    files
}

#[test]
fn a_base_with_generators_renders_as_kustomize_builds_it() {
    same_as_kustomize("base", "base", &base_files());
}

#[test]
fn namespace_prefix_suffix_and_generated_names_reach_every_reference() {
    same_as_kustomize(
        "prefix and references",
        "overlay",
        &with(
            base_files(),
            &[(
                "overlay/kustomization.yaml",
                "resources: [../base]\nnamespace: shop\nnamePrefix: prod-\nnameSuffix: -v2\nconfigMapGenerator:\n  - name: settings\n    behavior: merge\n    literals: [LOG_LEVEL=warn, EXTRA=1]\n",
            )],
        ),
    );
}

#[test]
fn nested_prefixes_and_a_base_referring_to_an_overlay_object() {
    same_as_kustomize(
        "nested prefixes",
        "top",
        &with(
            base_files(),
            &[
                ("mid/kustomization.yaml", "bases: [../base]\nnamePrefix: mid-\n"),
                (
                    "top/kustomization.yaml",
                    "resources: [../mid, extra.yaml]\nnamePrefix: top-\ncommonLabels: { env: prod }\n",
                ),
                (
                    "top/extra.yaml",
                    "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: { name: extra }\n    data: { on: y }\n",
                ),
            ],
        ),
    );
}

#[test]
fn labels_annotations_images_and_replicas() {
    same_as_kustomize(
        "labels images replicas",
        "overlay",
        &with(
            base_files(),
            &[
                (
                    "overlay/kustomization.yaml",
                    r#"resources: [../base, statefulset.yaml, widget.yaml]
labels:
  - pairs: { team: shop }
  - pairs: { version: "1.0" }
    includeTemplates: true
  - pairs: { track: stable }
    includeSelectors: true
commonAnnotations: { example.org/owner: shop-team, note: "on" }
images:
  - { name: registry.example.org/web, newTag: 2.0.0 }
  - { name: "registry.example.org:5000/proxy", newName: mirror.example.org/proxy, digest: "sha256:0123456789abcdef" }
  - { name: busybox, tagSuffix: -debug }
replicas:
  - { name: web, count: 4 }
  - { name: db, count: 3 }
"#,
                ),
                (
                    "overlay/statefulset.yaml",
                    "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: { name: db }\nspec:\n  selector: { matchLabels: { app: db } }\n  serviceName: db\n  template:\n    metadata: { labels: { app: db } }\n    spec:\n      containers: [{ name: db, image: 'busybox:1.36' }]\n  volumeClaimTemplates:\n    - metadata: { name: data }\n      spec: { accessModes: [ReadWriteOnce], resources: { requests: { storage: 1Gi } } }\n",
                ),
                (
                    "overlay/widget.yaml",
                    "apiVersion: example.org/v1\nkind: Widget\nmetadata: { name: w, annotations: {} }\nspec:\n  deep:\n    containers: [{ name: c, image: 'registry.example.org/web:1.0.0' }]\n",
                ),
            ],
        ),
    );
}

#[test]
fn patches_of_every_kind_with_targets_in_kustomizes_order() {
    same_as_kustomize(
        "patches",
        "overlay",
        &with(
            base_files(),
            &[
                (
                    "overlay/kustomization.yaml",
                    r#"resources: [../base, more.yaml]
namePrefix: p-
patchesStrategicMerge:
  - replicas.yaml
  - |-
    apiVersion: v1
    kind: Service
    metadata: { name: web }
    spec:
      ports:
        - { port: 443, targetPort: 8443, name: https }
patches:
  - path: env.yaml
    target: { kind: Deployment, labelSelector: "tier in (frontend, backend)" }
  - patch: |-
      - { op: add, path: /metadata/annotations, value: { patched: "yes" } }
      - { op: replace, path: /spec/minReplicas, value: 3 }
    target: { kind: HorizontalPodAutoscaler, name: "w.*" }
  - patch: '[{"op": "remove", "path": "/spec/template/spec/initContainers"}]'
    target: { group: apps, version: v1, kind: Deployment, name: web }
  - patch: |-
      apiVersion: v1
      kind: ConfigMap
      metadata: { name: doomed }
      $patch: delete
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: { name: renamed }
      spec: { paused: true }
    target: { kind: Deployment, name: other }
    options: { allowNameChange: true }
patchesJson6902:
  - target: { group: apps, version: v1, kind: Deployment, name: p-web }
    path: ops.yaml
"#,
                ),
                (
                    "overlay/replicas.yaml",
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec: { replicas: 7 }\n",
                ),
                (
                    "overlay/env.yaml",
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: any }\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          env: [{ name: LOG_LEVEL, value: debug }, { name: NEW, value: x }]\n          resources: { limits: { memory: 256Mi } }\n",
                ),
                ("overlay/ops.yaml", "- { op: test, path: /spec/replicas, value: 7 }\n- { op: copy, from: /metadata/labels, path: /spec/template/metadata/annotations }\n"),
                (
                    "overlay/more.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: doomed }\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: { name: other, labels: { tier: backend } }\nspec:\n  selector: { matchLabels: { app: other } }\n  template:\n    metadata: { labels: { app: other } }\n    spec: { containers: [{ name: web, image: 'registry.example.org/other:1' }] }\n",
                ),
            ],
        ),
    );
}

#[test]
fn components_add_resources_generators_and_patches_to_whoever_includes_them() {
    same_as_kustomize(
        "components",
        "overlay",
        &with(
            base_files(),
            &[
                ("overlay/kustomization.yaml", "resources: [../base]\ncomponents: [../monitoring]\nnamespace: shop\n"),
                (
                    "monitoring/kustomization.yaml",
                    "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [monitor.yaml]\nconfigMapGenerator:\n  - { name: settings, behavior: merge, literals: [METRICS=on] }\npatches:\n  - target: { kind: Deployment }\n    patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata: { name: x }\n      spec:\n        template:\n          metadata:\n            annotations: { prometheus.io/scrape: \"true\" }\n",
                ),
                (
                    "monitoring/monitor.yaml",
                    "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: { name: web }\nspec:\n  selector: { matchLabels: { app: web } }\n  endpoints: [{ port: http }]\n",
                ),
            ],
        ),
    );
}

#[test]
fn generators_from_files_env_files_and_options() {
    same_as_kustomize(
        "generators",
        "overlay",
        &with(
            base_files(),
            &[
                (
                    "overlay/kustomization.yaml",
                    r#"resources: [../base]
generatorOptions:
  labels: { generated: "true" }
  annotations: { note: global }
configMapGenerator:
  - name: files
    files: [config/app.properties, renamed.txt=config/other.txt]
    envs: [config/app.env]
    options: { annotations: { note: local }, immutable: true }
  - name: plain
    literals: [A=1]
    options: { disableNameSuffixHash: true }
  - name: settings
    behavior: replace
    literals: [ONLY=this]
secretGenerator:
  - name: tls
    type: kubernetes.io/tls
    literals: [tls.crt=certificate, tls.key=key]
  - name: long
    literals: [value=012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789]
"#,
                ),
                ("overlay/config/app.properties", "color=blue\nsize=<large> & more\n"),
                ("overlay/config/other.txt", "other\n"),
                ("overlay/config/app.env", "# comment\n\n  KEY=value\nQUOTED=\"kept quotes\"\nEMPTY=\nNOEQ\n"),
            ],
        ),
    );
}

#[test]
fn replacements_copy_values_into_lists_and_delimited_parts() {
    same_as_kustomize(
        "replacements",
        "overlay",
        &with(
            base_files(),
            &[
                (
                    "overlay/kustomization.yaml",
                    r#"resources: [../base]
namePrefix: r-
replacements:
  - source: { kind: Service, name: web, fieldPath: metadata.name }
    targets:
      - select: { kind: Deployment }
        fieldPaths:
          - spec.template.spec.containers.[name=web].env.[name=LOG_LEVEL].value
          - spec.template.spec.containers.[name=web].env.[name=SERVICE].value
        options: { create: true }
  - source: { kind: Deployment, name: web, fieldPath: "spec.template.spec.containers.[name=web].image", options: { delimiter: ":", index: 1 } }
    targets:
      - select: { kind: Deployment }
        fieldPaths: ["spec.template.spec.containers.[name=proxy].image"]
        options: { delimiter: ":", index: 1 }
  - path: more-replacements.yaml
"#,
                ),
                (
                    "overlay/more-replacements.yaml",
                    "- source: { kind: HorizontalPodAutoscaler, fieldPath: spec.maxReplicas }\n  targets:\n    - select: { kind: Deployment }\n      reject: [{ name: nothing }]\n      fieldPaths: [spec.replicas]\n",
                ),
            ],
        ),
    );
}

#[test]
fn transformer_configurations_and_crds_extend_the_field_specs() {
    same_as_kustomize(
        "configurations",
        "overlay",
        &with(
            base_files(),
            &[
                (
                    "overlay/kustomization.yaml",
                    "resources: [../base, widget.yaml]\nnamePrefix: c-\ncommonLabels: { app.kubernetes.io/part-of: shop }\nconfigurations: [config.yaml]\nsortOptions: { order: fifo }\n",
                ),
                (
                    "overlay/config.yaml",
                    "nameReference:\n  - kind: ConfigMap\n    fieldSpecs:\n      - { kind: Widget, path: spec/configName }\n      - { kind: Widget, path: spec/refs }\ncommonLabels:\n  - { kind: Widget, path: spec/selector/labels, create: true }\n",
                ),
                (
                    "overlay/widget.yaml",
                    "apiVersion: example.org/v1\nkind: Widget\nmetadata: { name: w }\nspec:\n  configName: settings\n  refs: [{ name: settings }, { name: nothing }]\n",
                ),
            ],
        ),
    );
}

#[test]
fn resources_read_with_kustomizes_yaml_rules() {
    // kustomize reads YAML 1.2: `y`, `on` and `no` are strings; `0644` is what kubectl reads.
    same_as_kustomize(
        "yaml rules",
        "base",
        &[
            ("base/kustomization.yaml", "resources: [cm.yaml]\n"),
            ("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: flags }\ndata: { a: y, b: on, c: no, d: \"yes\" }\n---\napiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec:\n  containers: [{ name: c, image: x }]\n  volumes: [{ name: v, configMap: { name: flags, defaultMode: 0644 } }]\n"),
        ],
    );
}
