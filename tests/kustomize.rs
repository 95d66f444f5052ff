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

fn with(
    mut files: Vec<(&'static str, &'static str)>,
    more: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
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
                (
                    "overlay/ops.yaml",
                    "- { op: test, path: /spec/replicas, value: 7 }\n- { op: copy, from: /metadata/labels, path: /spec/template/metadata/annotations }\n",
                ),
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
            (
                "base/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: flags }\ndata: { a: y, b: on, c: no, d: \"yes\" }\n---\napiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec:\n  containers: [{ name: c, image: x }]\n  volumes: [{ name: v, configMap: { name: flags, defaultMode: 0644 } }]\n",
            ),
        ],
    );
}

/// A kustomize layer whose build fails: exit 2, the message names `expect` (file:line and what to
/// do), and an apply writes nothing to the target.
fn refused(case: &str, files: &[(&str, &str)], expect: &[&str]) {
    let f = Fixture::new();
    f.write(
        "cairn.yaml",
        "environments:\n  e:\n    layers: [k/overlay]\n    target:\n      local: { path: .cairn/live/e }\n",
    );
    f.write(".gitignore", ".cairn/\n");
    for (path, text) in files {
        f.write(&format!("k/{path}"), text);
    }
    f.commit(case);
    let (code, out, err) = f.run(&["render", "--env", "e"]);
    assert_eq!(code, 2, "{case}: exit {code}\n{out}\n{err}");
    for needle in expect {
        assert!(err.contains(needle), "{case}: stderr lacks `{needle}`:\n{err}");
    }
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{case}: {err}");
    let (code, _, err) = f.run(&["apply", "--env", "e"]);
    assert_eq!(code, 2, "{case}: apply: {err}");
    assert!(!f.join(".cairn/live/e").exists(), "{case}: apply wrote to the target");
}

const ONE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: one }\ndata: { a: b }\n";

#[test]
fn bad_kustomizations_are_refused_with_the_file_line_and_a_fix() {
    refused(
        "malformed",
        &[("overlay/kustomization.yaml", "resources: [one.yaml\nnamespace: x\n")],
        &["k/overlay/kustomization.yaml:2:10", "illegal placement"],
    );
    refused(
        "unknown field",
        &[("overlay/kustomization.yaml", "resources: [one.yaml]\nnamePrefx: p-\n"), ("overlay/one.yaml", ONE)],
        &["k/overlay/kustomization.yaml:2:1", "unknown kustomization field `namePrefx`", "did you mean `namePrefix`"],
    );
    refused(
        "missing resource",
        &[("overlay/kustomization.yaml", "resources:\n  - one.yaml\n  - two.yaml\n"), ("overlay/one.yaml", ONE)],
        &["k/overlay/kustomization.yaml:3:5", "resource `two.yaml` does not exist"],
    );
    refused(
        "cycle",
        &[
            ("overlay/kustomization.yaml", "resources: [../base]\n"),
            ("base/kustomization.yaml", "resources: [../overlay]\n"),
        ],
        &["k/base/kustomization.yaml:1:", "cycle", "k/overlay → k/base → k/overlay"],
    );
    refused(
        "patch for nothing",
        &[
            ("overlay/kustomization.yaml", "resources: [one.yaml]\npatches:\n  - path: patch.yaml\n"),
            ("overlay/one.yaml", ONE),
            ("overlay/patch.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: two }\ndata: { a: c }\n"),
        ],
        &["k/overlay/patch.yaml:1", "ConfigMap two", "which no resource of the build is"],
    );
    refused(
        "json patch on a missing path",
        &[
            (
                "overlay/kustomization.yaml",
                "resources: [one.yaml]\npatches:\n  - target: { kind: ConfigMap }\n    patch: '[{\"op\": \"replace\", \"path\": \"/data/missing\", \"value\": 1}]'\n",
            ),
            ("overlay/one.yaml", ONE),
        ],
        &["k/overlay/kustomization.yaml:3:5", "does not apply to ConfigMap one", "/data/missing"],
    );
    refused(
        "missing generator file",
        &[("overlay/kustomization.yaml", "configMapGenerator:\n  - name: c\n    files: [nothere.txt]\n")],
        &["k/overlay/kustomization.yaml:3:13", "generator file `nothere.txt` does not exist"],
    );
    refused(
        "duplicate generated name",
        &[(
            "overlay/kustomization.yaml",
            "configMapGenerator:\n  - { name: c, literals: [a=1] }\n  - { name: c, literals: [b=2] }\n",
        )],
        &["k/overlay/kustomization.yaml:3:5", "already generated", "behavior: merge"],
    );
    refused(
        "duplicate resource",
        &[
            ("overlay/kustomization.yaml", "resources: [one.yaml, again.yaml]\n"),
            ("overlay/one.yaml", ONE),
            ("overlay/again.yaml", ONE),
        ],
        &["k/overlay/again.yaml:1", "ConfigMap one is already defined at k/overlay/one.yaml:1"],
    );
    refused(
        "load restriction",
        &[
            ("overlay/kustomization.yaml", "resources: [one.yaml]\npatches:\n  - path: ../shared/patch.yaml\n"),
            ("overlay/one.yaml", ONE),
            ("shared/patch.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: one }\n"),
        ],
        &["k/overlay/kustomization.yaml:3:11", "outside the kustomization's directory"],
    );
    refused(
        "outside the repository",
        &[("overlay/kustomization.yaml", "resources: [../../../etc]\n")],
        &["k/overlay/kustomization.yaml:1:13", "outside the configuration repository"],
    );
    refused(
        "remote base",
        &[("overlay/kustomization.yaml", "resources:\n  - https://github.com/example/base?ref=v1\n")],
        &["k/overlay/kustomization.yaml:2:5", "remote resource", "vendor the remote base into the repository"],
    );
    refused(
        "a helm chart without a release name",
        &[("overlay/kustomization.yaml", "helmCharts:\n  - { name: x, repo: https://charts.example.org }\n")],
        &["k/overlay/kustomization.yaml:2:5", "no `releaseName`", "random"],
    );
    refused(
        "a helm chart without a version",
        &[(
            "overlay/kustomization.yaml",
            "helmCharts:\n  - { name: x, releaseName: x, repo: https://charts.example.org }\n",
        )],
        &["k/overlay/kustomization.yaml:2:5", "no `version`", "pin `version`"],
    );
    refused(
        "a helm chart that is not there",
        &[("overlay/kustomization.yaml", "helmCharts:\n  - { name: x, releaseName: x }\n")],
        &["k/overlay/kustomization.yaml:2:5", "no chart at k/overlay/charts/x"],
    );
    refused(
        "the deprecated helm generator",
        &[("overlay/kustomization.yaml", "helmChartInflationGenerator:\n  - { chartName: x }\n")],
        &["k/overlay/kustomization.yaml:1:1", "`helmCharts` entries"],
    );
    refused(
        "validators",
        &[("overlay/kustomization.yaml", "validators: [v.yaml]\n")],
        &["k/overlay/kustomization.yaml:1:1", "`validators` runs plugins"],
    );
    refused(
        "a number where kustomize wants a string",
        &[
            ("overlay/kustomization.yaml", "resources: [one.yaml]\ncommonLabels: { version: 1.10 }\n"),
            ("overlay/one.yaml", ONE),
        ],
        &["k/overlay/kustomization.yaml:2:26", "quote the value"],
    );
    refused(
        "a component listed as a resource",
        &[
            ("overlay/kustomization.yaml", "resources: [../comp]\n"),
            ("comp/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"),
        ],
        &["k/comp/kustomization.yaml:1", "only be listed in `components`"],
    );
}

/// A repository with one environment over `k/overlay`, an age key (in the returned directory,
/// kept while the test runs) and `.sops.yaml` encrypting for it (`rule`: more keys of the rule).
fn encrypted_fixture(rule: &str) -> (Fixture, tempfile::TempDir, std::path::PathBuf) {
    let f = Fixture::new();
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = common::age_keygen(&keys.path().join("key.txt"));
    f.write(
        "cairn.yaml",
        "environments:\n  e:\n    layers: [k/overlay]\n    target:\n      local: { path: .cairn/live/e }\n",
    );
    f.write(".gitignore", ".cairn/\n");
    f.write(".sops.yaml", &format!("creation_rules:\n  - age: {public}\n{rule}"));
    (f, keys, key)
}

#[test]
fn a_sops_resource_in_a_kustomization_is_decrypted_masked_and_followed_where_replacements_copy_it() {
    const PASSWORD: &str = "pw-4f3e2d1c0b9a";
    let (f, _keys, key) = encrypted_fixture("    encrypted_regex: ^(data|stringData)$\n");
    f.write(
        "k/overlay/kustomization.yaml",
        r#"resources: [db-secret.yaml, app.yaml]
namePrefix: p-
replacements:
  - source: { kind: Secret, name: db, fieldPath: stringData.password }
    targets:
      - select: { kind: Deployment }
        fieldPaths: ["spec.template.spec.containers.[name=app].env.[name=DB_PASSWORD].value"]
"#,
    );
    f.write(
        "k/overlay/db-secret.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata: {{ name: db }}\nstringData:\n  password: {PASSWORD}\n"),
    );
    f.write(
        "k/overlay/app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: app }\nspec:\n  selector: { matchLabels: { app: app } }\n  template:\n    metadata: { labels: { app: app } }\n    spec:\n      containers:\n        - name: app\n          image: registry.example.org/app:1\n          env:\n            - { name: DB_PASSWORD, value: placeholder }\n            - name: FROM_REF\n              valueFrom: { secretKeyRef: { name: db, key: password } }\n",
    );
    common::sops_encrypt(f.path(), &f.join("k/overlay/db-secret.yaml"), &[]);
    f.commit("an encrypted secret in a kustomization");
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    let rendered = f.json(&["render", "--env", "e", "--format", "json"], 0);
    let objects = rendered[0]["objects"].as_array().expect("objects");
    let app = &objects.iter().find(|o| o["id"]["kind"] == "Deployment").expect("app")["body"];
    assert_eq!(app["metadata"]["name"], "p-app");
    let env = app["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env");
    assert!(env[0]["value"].as_str().is_some_and(|v| v.starts_with("<secret")), "masked where it was copied: {env:?}");
    assert_eq!(env[1]["valueFrom"]["secretKeyRef"]["name"], "p-db", "the reference follows the prefix");
    let mut outputs = serde_json::to_string(&rendered).expect("json");
    outputs.push_str(&f.outputs_of(&[
        &["render", "--env", "e"][..],
        &["plan", "--env", "e"],
        &["plan", "--env", "e", "--format", "json"],
        &["apply", "--env", "e"],
    ]));
    assert!(
        !outputs.contains(PASSWORD) && !outputs.contains(&common::b64(PASSWORD)),
        "no output holds the password or its base64"
    );
    let secret = f.read(".cairn/live/e/objects/Secret.core/_cluster/p-db.json");
    assert!(secret.contains(PASSWORD), "the applied Secret carries the password");
    let live = f.read(".cairn/live/e/objects/Deployment.apps/_cluster/p-app.json");
    assert!(live.contains(PASSWORD), "the applied Deployment carries the copied password");
}

#[test]
fn the_kustomize_scaffold_builds_as_kustomize_does_and_passes_its_policies() {
    let f = Fixture::new();
    let dir = f.join("shop");
    let out = f.cairn().args(["init", "--layout", "kustomize"]).arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let run = |args: &[&str]| {
        let o = f.cairn().arg("--repo").arg(&dir).args(args).output().expect("run");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for env in ["staging", "production"] {
        let (code, out, err) = run(&["render", "--env", env, "--format", "json"]);
        assert_eq!(code, Some(0), "{err}");
        let rendered: Value = serde_json::from_str(&out).expect("json");
        let theirs = kustomize::build(&dir.join(format!("deploy/overlays/{env}")));
        kustomize::assert_same_objects(env, &kustomize::cairn_objects(&rendered), &theirs);
    }
    let (code, out, err) = run(&["validate"]);
    assert_eq!(code, Some(0), "the scaffold passes its schemas and compliance policy: {out}{err}");
    let (code, out, err) = run(&["apply", "--env", "staging"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let live =
        std::fs::read_dir(dir.join(".cairn/live/staging/objects/ConfigMap.core/shop")).expect("ConfigMaps applied");
    let names: Vec<String> = live.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.starts_with("web-settings-") && n.len() > "web-settings-.json".len()), "{names:?}");
}

#[test]
fn vars_are_substituted_after_every_rename() {
    same_as_kustomize(
        "vars",
        "overlay",
        &with(
            base_files(),
            &[
                (
                    "overlay/kustomization.yaml",
                    r#"resources: [../base, job.yaml]
namePrefix: v-
vars:
  - name: SERVICE
    objref: { kind: Service, name: web, apiVersion: v1 }
  - name: PORT
    objref: { kind: Service, name: web, apiVersion: v1 }
    fieldref: { fieldPath: "spec.ports[0].port" }
"#,
                ),
                (
                    "overlay/job.yaml",
                    "apiVersion: batch/v1\nkind: Job\nmetadata: { name: smoke }\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: smoke\n          image: curlimages/curl:8\n          args: [\"http://$(SERVICE):$(PORT)/healthz\", \"$$(SERVICE)\", \"$(UNKNOWN)\"]\n          env: [{ name: PORT, value: \"$(PORT)\" }]\n",
                ),
            ],
        ),
    );
}

#[test]
fn every_patch_and_generator_merge_is_among_the_objects_sources() {
    let f = same_as_kustomize(
        "sources",
        "overlay",
        &with(
            base_files(),
            &[
                (
                    "overlay/kustomization.yaml",
                    "resources: [../base]\npatches:\n  - path: replicas.yaml\n  - target: { kind: Deployment }\n    patch: |-\n      - { op: add, path: /spec/paused, value: true }\nconfigMapGenerator:\n  - { name: settings, behavior: merge, literals: [X=1] }\n",
                ),
                (
                    "overlay/replicas.yaml",
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec: { replicas: 3 }\n",
                ),
            ],
        ),
    );
    let rendered = f.json(&["render", "--env", "e", "--format", "json"], 0);
    let sources = |kind: &str| -> Vec<String> {
        let objects = rendered[0]["objects"].as_array().expect("objects");
        let o = objects.iter().find(|o| o["id"]["kind"] == kind).expect(kind);
        o["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .map(|s| format!("{}:{}", s["file"].as_str().unwrap_or(""), s["line"]))
            .collect()
    };
    assert_eq!(
        sources("Deployment"),
        ["k/base/deployment.yaml:1", "k/overlay/replicas.yaml:1", "k/overlay/kustomization.yaml:6"],
        "the resource, the patch file, the kustomization line of the inline patch"
    );
    assert_eq!(sources("ConfigMap"), ["k/base/kustomization.yaml:3", "k/overlay/kustomization.yaml:8"]);
}

#[test]
fn a_sops_file_in_a_secret_generator_is_decrypted_and_hashed_as_kustomize_hashes_the_plaintext() {
    const PASSWORD: &str = "gen-pw-7a6b5c4d3e";
    let (f, _keys, key) = encrypted_fixture("");
    let kustomization = "namePrefix: p-\nsecretGenerator:\n  - name: db\n    files: [password.txt]\n";
    for dir in ["k/overlay", "plain"] {
        f.write(&format!("{dir}/kustomization.yaml"), kustomization);
        f.write(&format!("{dir}/password.txt"), &format!("{PASSWORD}\n"));
    }
    common::sops_encrypt(
        f.path(),
        &f.join("k/overlay/password.txt"),
        &["--input-type", "binary", "--output-type", "json"],
    );
    assert!(!f.read("k/overlay/password.txt").contains(PASSWORD), "encrypted in the repository");
    f.commit("a generated secret from an encrypted file");
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    let rendered = f.json(&["render", "--env", "e", "--format", "json"], 0);
    let theirs = kustomize::build(&f.join("plain"));
    let ours = kustomize::cairn_objects(&rendered);
    assert_eq!(ours.len(), 1);
    assert_eq!(
        ours[0]["metadata"]["name"], theirs[0]["metadata"]["name"],
        "the hash is kustomize's over the plaintext"
    );
    let mut outputs = serde_json::to_string(&rendered).expect("json");
    outputs.push_str(&f.outputs_of(&[
        &["render", "--env", "e"][..],
        &["plan", "--env", "e", "--format", "json"],
        &["apply", "--env", "e"],
    ]));
    let encoded = common::b64(&format!("{PASSWORD}\n"));
    assert!(!outputs.contains(PASSWORD) && !outputs.contains(&encoded), "no output holds the password or its base64");
    let name = theirs[0]["metadata"]["name"].as_str().expect("name");
    let live = f.read(&format!(".cairn/live/e/objects/Secret.core/_cluster/{name}.json"));
    assert!(live.contains(&encoded), "the applied Secret carries the value");
}

#[test]
fn a_sops_dotenv_file_in_a_generator_is_refused_without_a_trace_of_its_values() {
    const TOKEN: &str = "dotenv-token-5f4e3d2c";
    let (f, _keys, key) = encrypted_fixture("");
    f.write("k/overlay/kustomization.yaml", "secretGenerator:\n  - name: api\n    envs: [secrets.env]\n");
    f.write("k/overlay/secrets.env", &format!("TOKEN={TOKEN}\nLEVEL=3\n"));
    common::sops_encrypt(
        f.path(),
        &f.join("k/overlay/secrets.env"),
        &["--input-type", "dotenv", "--output-type", "dotenv"],
    );
    assert!(f.read("k/overlay/secrets.env").contains("sops_mac="), "sops wrote its dotenv format");
    f.commit("a generator over an encrypted dotenv file");
    f.set_env("CAIRN_AGE_KEY_FILE", &key.display().to_string());
    for args in [&["render", "--env", "e"][..], &["apply", "--env", "e"]] {
        let (code, out, err) = f.run(args);
        assert_eq!(code, 2, "{args:?}: exit {code}\n{out}\n{err}");
        assert!(
            err.contains("k/overlay/kustomization.yaml:3")
                && err.contains("SOPS dotenv file")
                && err.contains("--input-type binary"),
            "{err}"
        );
        assert!(!err.contains(TOKEN) && !out.contains(TOKEN), "{err}");
    }
    assert!(!f.join(".cairn/live/e").exists(), "nothing was applied");
}

#[test]
fn builtin_transformer_and_generator_configurations_run_with_their_own_field_specs() {
    same_as_kustomize(
        "builtin plugins",
        "overlay",
        &with(
            base_files(),
            &[
                (
                    "overlay/kustomization.yaml",
                    "resources: [../base]\ntransformers: [labels.yaml, namespace.yaml, prefix.yaml, images.yaml, replicas.yaml, patch.yaml]\ngenerators: [generator.yaml]\n",
                ),
                (
                    "overlay/labels.yaml",
                    "apiVersion: builtin\nkind: LabelTransformer\nmetadata: { name: labels }\nlabels: { team: shop }\nfieldSpecs:\n  - { path: metadata/labels, create: true }\n  - { kind: Deployment, path: spec/template/metadata/labels, create: true }\n---\napiVersion: builtin\nkind: AnnotationsTransformer\nmetadata: { name: notes }\nannotations: { owner: shop }\nfieldSpecs: [{ path: metadata/annotations, create: true }]\n",
                ),
                (
                    "overlay/namespace.yaml",
                    "apiVersion: builtin\nkind: NamespaceTransformer\nmetadata: { name: ns, namespace: shop }\nunsetOnly: true\nsetRoleBindingSubjects: allServiceAccounts\n",
                ),
                (
                    "overlay/prefix.yaml",
                    "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata: { name: affix }\nprefix: pre-\nsuffix: -suf\nfieldSpecs: [{ path: metadata/name }]\n",
                ),
                (
                    "overlay/images.yaml",
                    "apiVersion: builtin\nkind: ImageTagTransformer\nmetadata: { name: img }\nimageTag: { name: registry.example.org/web, newTag: 3.0.0 }\n",
                ),
                (
                    "overlay/replicas.yaml",
                    "apiVersion: builtin\nkind: ReplicaCountTransformer\nmetadata: { name: r }\nreplica: { name: web, count: 6 }\nfieldSpecs: [{ kind: Deployment, path: spec/replicas, create: true }]\n",
                ),
                (
                    "overlay/patch.yaml",
                    "apiVersion: builtin\nkind: PatchTransformer\nmetadata: { name: p }\ntarget: { kind: Service }\npatch: '[{\"op\": \"add\", \"path\": \"/spec/type\", \"value\": \"ClusterIP\"}]'\n",
                ),
                (
                    "overlay/generator.yaml",
                    "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: { name: extra }\nliterals: [A=1, B=two]\n",
                ),
            ],
        ),
    );
}

#[test]
fn an_openapi_schema_gives_custom_kinds_merge_keys() {
    const SCHEMA: &str = r##"{
  "definitions": {
    "v1.Widget": {
      "properties": {
        "apiVersion": { "type": "string" },
        "kind": { "type": "string" },
        "metadata": { "type": "object" },
        "spec": {
          "properties": {
            "items": {
              "type": "array",
              "items": { "$ref": "#/definitions/v1.Item" },
              "x-kubernetes-patch-merge-key": "name",
              "x-kubernetes-patch-strategy": "merge"
            },
            "containers": {
              "type": "array",
              "items": { "$ref": "#/definitions/io.k8s.api.core.v1.Container" },
              "x-kubernetes-patch-merge-key": "name",
              "x-kubernetes-patch-strategy": "merge"
            }
          }
        }
      },
      "x-kubernetes-group-version-kind": [{ "group": "example.org", "kind": "Widget", "version": "v1" }]
    },
    "v1.Item": { "properties": { "name": { "type": "string" }, "value": { "type": "string" } } }
  }
}
"##;
    same_as_kustomize(
        "openapi",
        "overlay",
        &[
            (
                "overlay/kustomization.yaml",
                "resources: [widget.yaml]\nopenapi:\n  path: schema.json\npatches:\n  - path: patch.yaml\n",
            ),
            ("overlay/schema.json", SCHEMA),
            (
                "overlay/widget.yaml",
                "apiVersion: example.org/v1\nkind: Widget\nmetadata: { name: w }\nspec:\n  items: [{ name: a, value: \"1\" }, { name: b, value: \"2\" }]\n  containers:\n    - name: c\n      image: x\n      env: [{ name: A, value: \"1\" }]\n",
            ),
            (
                "overlay/patch.yaml",
                "apiVersion: example.org/v1\nkind: Widget\nmetadata: { name: w }\nspec:\n  items: [{ name: b, value: \"3\" }]\n  containers:\n    - name: c\n      env: [{ name: B, value: \"2\" }]\n",
            ),
        ],
    );
}
