//! Which objects a patch or a replacement applies to: kustomize's `target` selector. Group,
//! version, kind, name and namespace are regular expressions matched against the whole value;
//! `labelSelector` and `annotationSelector` use the Kubernetes label-selector syntax.

use regex::Regex;
use serde_json::Value;

use crate::error::Error;
use crate::yaml::Node;

use super::file::{Loc, Reader, field};
use super::resource::Resource;

#[derive(Debug, Clone)]
pub struct Selector {
    group: Option<Regex>,
    version: Option<Regex>,
    kind: Option<Regex>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
    /// The selector as written, for messages ("matches nothing: kind=Deployment name=web").
    pub written: String,
    pub at: Loc,
}

impl Selector {
    pub fn read(r: &Reader<'_>, node: &Node) -> Result<Selector, Error> {
        const FIELDS: [&str; 7] =
            ["group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector"];
        let map = r.map(node, "a target selector", &FIELDS)?;
        let at = r.at(node);
        let mut written = Vec::new();
        let regex = |name: &str| -> Result<Option<Regex>, Error> {
            let Some(v) = field(map, name) else { return Ok(None) };
            let v = r.string(v, name)?;
            if v.value.is_empty() {
                return Ok(None);
            }
            Regex::new(&format!("^(?:{})$", v.value))
                .map(Some)
                .map_err(|e| v.at.error(format!("`{name}` is not a valid regular expression: {e}")))
        };
        let selector_of = |name: &str| -> Result<Vec<Requirement>, Error> {
            let Some(v) = field(map, name) else { return Ok(Vec::new()) };
            let v = r.string(v, name)?;
            parse_requirements(&v.value).map_err(|e| v.at.error(format!("`{name}`: {e}")))
        };
        for name in FIELDS {
            if let Some(v) = field(map, name) {
                written.push(format!("{name}={}", r.string(v, name)?.value));
            }
        }
        Ok(Selector {
            group: regex("group")?,
            version: regex("version")?,
            kind: regex("kind")?,
            name: regex("name")?,
            namespace: regex("namespace")?,
            labels: selector_of("labelSelector")?,
            annotations: selector_of("annotationSelector")?,
            written: written.join(" "),
            at,
        })
    }

    /// Whether the resource is selected: its original or current name and namespace, its
    /// current group/version/kind, labels and annotations.
    pub fn matches(&self, r: &Resource) -> bool {
        let full = |re: &Option<Regex>, value: &str| re.as_ref().is_none_or(|re| re.is_match(value));
        let (group, version) = r.group_version();
        let org = r.previous.first();
        let org_name = org.map_or(r.name(), |id| id.name.as_str());
        // Namespaces are compared only when the selector names one (they cost an allocation).
        let namespace_matches = || {
            self.namespace.is_none()
                || full(&self.namespace, &namespace_for_selector(r.effective_namespace()))
                || full(
                    &self.namespace,
                    &namespace_for_selector(org.map_or_else(|| r.effective_namespace(), |id| id.effective_namespace())),
                )
        };
        full(&self.group, group)
            && full(&self.version, version)
            && full(&self.kind, r.kind())
            && (full(&self.name, r.name()) || full(&self.name, org_name))
            && namespace_matches()
            && self.labels.iter().all(|q| q.matches(r.body.get("metadata").and_then(|m| m.get("labels"))))
            && self.annotations.iter().all(|q| q.matches(r.body.get("metadata").and_then(|m| m.get("annotations"))))
    }
}

/// kustomize compares a cluster-wide object's namespace as `_non_namespaceable_`.
fn namespace_for_selector(effective: String) -> String {
    if effective.is_empty() { "_non_namespaceable_".to_string() } else { effective }
}

/// One requirement of a label selector (`app=web`, `tier in (a,b)`, `!legacy`).
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        match self {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        }
    }
}

/// Parses a Kubernetes label selector: comma-separated requirements, each `k=v`, `k==v`,
/// `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` or `!k`.
pub fn parse_requirements(text: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        // A requirement ends at a comma outside parentheses.
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let part = rest[..end].trim();
        rest = rest.get(end + 1..).unwrap_or("").trim();
        out.push(parse_requirement(part)?);
    }
    Ok(out)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let bad = || format!("`{part}` is not a label selector requirement (k=v, k!=v, k in (a,b), k notin (a,b), k, !k)");
    if let Some(key) = part.strip_prefix('!') {
        return valid_key(key.trim()).map(Requirement::NotExists).ok_or_else(bad);
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(valid_key(k.trim()).ok_or_else(bad)?, v.trim().to_string()));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(valid_key(k.trim()).ok_or_else(bad)?, v.trim().to_string()));
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, tail] = words.as_slice() {
        let tail = tail.trim();
        let (op, list) = if let Some(l) = tail.strip_prefix("notin") {
            ("notin", l)
        } else if let Some(l) = tail.strip_prefix("in") {
            ("in", l)
        } else {
            return Err(bad());
        };
        let list = list.trim().strip_prefix('(').and_then(|l| l.strip_suffix(')')).ok_or_else(bad)?;
        let values: Vec<String> = list.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        let key = valid_key(key).ok_or_else(bad)?;
        return Ok(if op == "in" { Requirement::In(key, values) } else { Requirement::NotIn(key, values) });
    }
    valid_key(part).map(Requirement::Exists).ok_or_else(bad)
}

fn valid_key(key: &str) -> Option<String> {
    let ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_parse_every_form() {
        let parsed = parse_requirements("app=web, tier in (a, b),env!=prod,!legacy,track, zone notin (x)")
            .expect("test input is valid");
        assert_eq!(
            parsed,
            vec![
                Requirement::Equals("app".into(), "web".into()),
                Requirement::In("tier".into(), vec!["a".into(), "b".into()]),
                Requirement::NotEquals("env".into(), "prod".into()),
                Requirement::NotExists("legacy".into()),
                Requirement::Exists("track".into()),
                Requirement::NotIn("zone".into(), vec!["x".into()]),
            ]
        );
        assert!(parse_requirements("app in web").is_err());
        assert!(parse_requirements("a b c").is_err());
    }
}
