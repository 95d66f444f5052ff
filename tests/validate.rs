//! Schema validation over real repositories: every finding code, CRDs from the same change,
//! locations across layers, every output format parsed back, and unusable schemas.
mod common;

use common::Fixture;
use serde_json::{Value, json};

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: backups.example.org
spec:
  group: example.org
  names: {kind: Backup, plural: backups, singular: backup}
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
              required: [schedule]
              properties:
                schedule: {type: string}
                keep: {type: integer, minimum: 1}
                port: {x-kubernetes-int-or-string: true}
                note: {type: string, nullable: true}
";

fn findings(f: &Fixture, args: &[&str], code: i32) -> Vec<Value> {
    let mut all = vec!["validate", "--format", "json"];
    all.extend_from_slice(args);
    let v = f.json(&all, code);
    v["findings"].as_array().expect("findings").clone()
}

/// (code, file, line, column, pointer) of each finding, for compact assertions.
fn summary(list: &[Value]) -> Vec<(String, String, u64, u64, String)> {
    list.iter()
        .map(|f| {
            (
                f["code"].as_str().expect("code").to_string(),
                f["file"].as_str().expect("file").to_string(),
                f["line"].as_u64().expect("line"),
                f["column"].as_u64().expect("column"),
                f["pointer"].as_str().expect("pointer").to_string(),
            )
        })
        .collect()
}

fn row(code: &str, file: &str, line: u64, column: u64, pointer: &str) -> (String, String, u64, u64, String) {
    (code.into(), file.into(), line, column, pointer.into())
}

#[test]
fn a_valid_repository_has_no_findings() {
    let f = Fixture::standard();
    assert!(findings(&f, &[], 0).is_empty());
    assert!(findings(&f, &["--strict", "--require-schemas"], 0).is_empty());
}

#[test]
fn a_value_overridden_in_an_environment_is_reported_there() {
    let f = Fixture::standard();
    f.write(
        "environments/staging/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: \"two\"\n",
    );
    let list = findings(&f, &["--env", "staging"], 1);
    assert_eq!(summary(&list), vec![row("schema/type", "environments/staging/replicas.yaml", 7, 3, "/spec/replicas")]);
    assert_eq!(list[0]["message"], "`/spec/replicas` must be integer, found a string");
    assert_eq!(list[0]["environment"], "staging");
    assert_eq!(list[0]["object"], json!({"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "web"}));
    assert!(list[0]["schema_path"].as_str().expect("schema path").ends_with("/type"), "{}", list[0]);
    // Production does not override it: no finding there.
    assert!(findings(&f, &["--env", "production"], 0).is_empty());
}

#[test]
fn each_schema_code_is_reported_with_its_location() {
    let f = Fixture::standard();
    f.write(
        "base/more.yaml",
        "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: Sideways
  ports:
    - port: 80
      protocol: TCP
      targetPort: 8080
      nodePortt: 5
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
  namespace: shop
spec:
  template:
    spec:
      containers:
        - image: x
---
apiVersion: example.org/v9
kind: Unknown
metadata:
  name: mystery
",
    );
    let list = findings(&f, &["--env", "staging", "--strict"], 1);
    insta::assert_json_snapshot!(list);
    let codes: Vec<&str> = list.iter().map(|f| f["code"].as_str().expect("code")).collect();
    for code in ["schema/unknown-field", "schema/required", "schema/missing"] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    // Without --strict the misspelled field passes and an unknown kind is only a warning.
    let lenient = findings(&f, &["--env", "staging"], 1);
    assert!(!lenient.iter().any(|f| f["code"] == "schema/unknown-field"));
    let missing = lenient.iter().find(|f| f["code"] == "schema/missing").expect("missing schema");
    assert_eq!(missing["severity"], "warning");
    let required = findings(&f, &["--env", "staging", "--require-schemas"], 1);
    let missing = required.iter().find(|f| f["code"] == "schema/missing").expect("missing schema");
    assert_eq!(missing["severity"], "error");
}

#[test]
fn custom_resources_are_checked_against_a_crd_in_the_same_change() {
    let f = Fixture::standard();
    f.write("base/crd.yaml", CRD);
    f.write(
        "base/backups.yaml",
        "apiVersion: example.org/v1\nkind: Backup\nmetadata:\n  name: nightly\n  namespace: shop\nspec:\n  schedule: \"0 3 * * *\"\n  keep: 7\n  port: http\n  note: null\n---\napiVersion: example.org/v1\nkind: Backup\nmetadata:\n  name: weekly\n  namespace: shop\nspec:\n  keep: 0\n  port: 8080\n",
    );
    let list = findings(&f, &["--env", "staging"], 1);
    assert_eq!(
        summary(&list),
        vec![
            row("schema/required", "base/backups.yaml", 17, 1, "/spec"),
            row("schema/range", "base/backups.yaml", 18, 3, "/spec/keep"),
        ]
    );
    assert!(list[0]["message"].as_str().expect("message").contains("missing required field `schedule`"));
    assert!(list[0]["message"].as_str().expect("message").contains("CRD backups.example.org (base/crd.yaml:1)"));

    // Strict mode accepts the envelope every object has, and rejects undeclared spec fields.
    f.write("base/backups.yaml", "apiVersion: example.org/v1\nkind: Backup\nmetadata:\n  name: nightly\n  namespace: shop\nspec:\n  schedule: daily\n  retain: 3\n");
    let list = findings(&f, &["--env", "staging", "--strict"], 1);
    assert_eq!(summary(&list), vec![row("schema/unknown-field", "base/backups.yaml", 8, 3, "/spec/retain")]);
}

#[test]
fn repository_schemas_take_precedence_and_may_be_yaml() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!(
            "{}schemas:\n  - {{ apiVersion: example.org/v1, kind: AppSettings, schema: schemas/app-settings.json }}\n  - {{ apiVersion: v1, kind: ConfigMap, schema: schemas/configmap.yaml }}\n",
            common::CONFIG
        ),
    );
    f.write(
        "schemas/app-settings.json",
        r##"{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "required": ["spec"],
            "properties": {"spec": {"$ref": "#/definitions/spec"}},
            "definitions": {"spec": {"type": "object", "properties": {"level": {"enum": ["low", "high"]}}}}}"##,
    );
    f.write(
        "schemas/configmap.yaml",
        "type: object\nproperties:\n  data:\n    type: object\n    required: [LOG_LEVEL]\n",
    );
    f.write(
        "environments/staging/settings.yaml",
        "apiVersion: example.org/v1\nkind: AppSettings\nmetadata:\n  name: app\nspec:\n  level: medium\n",
    );
    f.write(
        "environments/production/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  namespace: shop\ndata:\n  X: \"1\"\n",
    );
    let list = findings(&f, &[], 1);
    assert_eq!(
        summary(&list),
        vec![
            row("schema/required", "environments/production/cm.yaml", 6, 1, "/data"),
            row("schema/enum", "environments/staging/settings.yaml", 6, 3, "/spec/level"),
        ]
    );
    assert_eq!(list[1]["message"], r#"`/spec/level` must be one of ["low","high"]"#);
}

#[test]
fn every_output_format_parses() {
    let f = Fixture::standard();
    f.write(
        "environments/staging/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: \"two, or: more\"\n",
    );

    let sarif = f.json(&["validate", "--env", "staging", "--format", "sarif"], 1);
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "schema/type");
    assert_eq!(result["level"], "error");
    let location = &result["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "environments/staging/replicas.yaml");
    assert_eq!(location["region"], json!({"startLine": 7, "startColumn": 3}));
    assert_eq!(sarif["runs"][0]["tool"]["driver"]["rules"][0]["id"], "schema/type");

    let junit = f.ok(&["validate", "--env", "staging", "--format", "junit"], 1);
    let doc = roxmltree::Document::parse(&junit).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!((root.attribute("tests"), root.attribute("failures")), (Some("3"), Some("1")));
    let cases: Vec<_> = root.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 3, "one test case per object");
    let failed: Vec<_> = cases.iter().filter(|c| c.children().any(|n| n.has_tag_name("failure"))).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attribute("name"), Some("Deployment.apps shop/web"));

    let github = f.ok(&["validate", "--env", "staging", "--format", "github"], 1);
    assert_eq!(
        github.trim(),
        "::error file=environments/staging/replicas.yaml,line=7,col=3,title=schema/type::Deployment.apps shop/web (staging): `/spec/replicas` must be integer, found a string"
    );

    let md = f.ok(&["validate", "--env", "staging", "--format", "markdown"], 1);
    assert!(md.contains("| error | `schema/type` | staging | `Deployment.apps shop/web` | `environments/staging/replicas.yaml:7:3` |"), "{md}");

    let human = f.ok(&["validate", "--env", "staging"], 1);
    insta::assert_snapshot!(human);
}

#[test]
fn a_schema_file_that_is_not_json_is_an_error_naming_it() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!("{}schemas:\n  - {{ apiVersion: example.org/v1, kind: A, schema: schemas/a.json }}\n", common::CONFIG),
    );
    f.write("schemas/a.json", "{\n  \"type\": \"object\",\n  oops\n}\n");
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: schemas/a.json:3:3: invalid JSON"), "{err}");
}

#[test]
fn a_schema_that_does_not_compile_is_an_error_naming_it() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!("{}schemas:\n  - {{ apiVersion: example.org/v1, kind: A, schema: schemas/a.json }}\n", common::CONFIG),
    );
    f.write("schemas/a.json", r#"{"type": "objekt"}"#);
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: schemas/a.json: schema cannot be compiled"), "{err}");
}

#[test]
fn a_reference_that_needs_the_network_is_refused() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!("{}schemas:\n  - {{ apiVersion: example.org/v1, kind: A, schema: schemas/a.json }}\n", common::CONFIG),
    );
    f.write("schemas/a.json", r#"{"$ref": "https://schemas.example.org/a.json"}"#);
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("schemas/a.json") && err.contains("resolved offline only"), "{err}");
}

#[test]
fn a_missing_schema_file_is_an_error_naming_the_mapping() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!(
            "{}schemas:\n  - {{ apiVersion: example.org/v1, kind: A, schema: schemas/none.json }}\n",
            common::CONFIG
        ),
    );
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cairn.yaml:11: schema file `schemas/none.json`"), "{err}");
}

#[test]
fn a_crd_with_a_malformed_schema_is_an_error_naming_its_file() {
    let f = Fixture::standard();
    f.write("base/crd.yaml", &CRD.replace("keep: {type: integer, minimum: 1}", "keep: {type: 17}"));
    let (code, _, err) = f.run(&["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: base/crd.yaml:1: CustomResourceDefinition `backups.example.org`: version `v1`: schema cannot be compiled"), "{err}");
    assert!(!f.join(".cairn").exists());
}

#[test]
fn every_other_schema_code_from_a_repository_schema() {
    let f = Fixture::standard();
    f.write(
        "cairn.yaml",
        &format!(
            "{}schemas:\n  - {{ apiVersion: example.org/v1, kind: Team, schema: schemas/team.json }}\n",
            common::CONFIG
        ),
    );
    f.write(
        "schemas/team.json",
        r#"{"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "slug": {"type": "string", "pattern": "^[a-z]+$"},
            "email": {"type": "string", "format": "email"},
            "size": {"type": "integer", "maximum": 10},
            "port": {"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^[a-z]+$"}]},
            "tier": {"const": "gold"},
            "tags": {"type": "array", "uniqueItems": true}
        }}}}"#,
    );
    f.write(
        "base/team.yaml",
        "apiVersion: example.org/v1\nkind: Team\nmetadata:\n  name: core\nspec:\n  slug: Core-1\n  email: not-an-email\n  size: 12\n  port: \"80\"\n  tier: silver\n  tags: [a, a]\n",
    );
    let list = findings(&f, &["--env", "staging"], 1);
    insta::assert_json_snapshot!(list);
    let codes: Vec<&str> = list.iter().map(|f| f["code"].as_str().expect("code")).collect();
    assert_eq!(
        codes,
        vec!["schema/pattern", "schema/format", "schema/range", "schema/one-of", "schema/enum", "schema/invalid"]
    );
    for finding in &list {
        let message = finding["message"].as_str().expect("message");
        for value in ["Core-1", "not-an-email", "silver"] {
            assert!(!message.contains(value), "messages never quote the value: {message}");
        }
    }
}
