//! YAML reading shared by every stage: parse options that match what `kubectl` sends (YAML 1.1
//! octals such as `defaultMode: 0644`), multi-document streams with the line of each document,
//! a located tree for configuration files, and YAML output.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::error::Error;

/// Options for every YAML read: Kubernetes reads manifests with YAML 1.1 rules, where `0644` is
/// octal (420). Reading it as decimal 644 would silently change file modes.
///
/// The parser's default budget (1,024 documents, 250,000 nodes a stream) is sized for single
/// configuration files; one generated manifest file can hold thousands of objects. Alias and
/// anchor limits, which guard against alias bombs, stay at their defaults.
pub fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
        budget: serde_saphyr::budget! {
            max_documents: 1_000_000,
            max_nodes: 50_000_000,
            max_events: 100_000_000,
        },
    }
}

/// One document of a multi-document stream and the line it starts on (1-based).
#[derive(Debug)]
pub struct Document {
    pub value: serde_json::Value,
    pub line: u64,
}

/// Parses a multi-document YAML stream. Empty documents are skipped.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, Error> {
    let docs: Vec<Spanned<serde_json::Value>> =
        serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| yaml_error(file, &e))?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.value.is_null())
        .map(|d| Document { value: d.value, line: d.defined.line().max(1) })
        .collect())
}

/// Turns a parser error into `file:line:column: message` without the source snippet, so the
/// message stays on one line.
pub fn yaml_error(file: &str, e: &serde_saphyr::Error) -> Error {
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    // The parser prefixes "error: line L column C: "; the location is already in our prefix.
    let message = match first.find(": ") {
        Some(i) if first[..i].contains("line ") => first[i + 2..].trim().to_string(),
        _ => first.trim_start_matches("error: ").to_string(),
    };
    // Some messages repeat the position at the end; it is already in the prefix.
    let message = match message.rfind(" at line ") {
        Some(i) if message[i..].contains(", column ") => message[..i].to_string(),
        _ => message,
    };
    Error::Yaml { file: file.to_string(), line, column, message }
}

/// A YAML node with the position it was written at, for files whose errors must name the line of
/// a key (configuration files, policy bindings).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: u64,
    pub column: u64,
}

impl Node {
    /// Parses a single-document YAML file into a located tree.
    pub fn parse(file: &str, text: &str) -> Result<Node, Error> {
        let node: Option<Node> =
            serde_saphyr::from_str_with_options(text, options()).map_err(|e| yaml_error(file, &e))?;
        Ok(node.unwrap_or(Node { value: NodeValue::Null, line: 1, column: 1 }))
    }

    /// Parses a multi-document stream into located trees, empty documents skipped.
    pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Node>, Error> {
        let docs: Vec<Option<Node>> =
            serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| yaml_error(file, &e))?;
        Ok(docs.into_iter().flatten().filter(|n| n.value != NodeValue::Null).collect())
    }

    /// The node at an RFC 6901 pointer, as far as it exists: the deepest node reached, the
    /// position of the key (or list item) that leads to it, and how many tokens matched.
    pub fn walk(&self, pointer: &str) -> (usize, u64, u64) {
        let mut node = self;
        let mut depth = 0;
        let mut at = (self.line, self.column);
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match &node.value {
                NodeValue::Map(entries) => {
                    entries.iter().find(|(k, _)| k.name == token).map(|(k, v)| (v, k.line, k.column))
                }
                NodeValue::Seq(items) => {
                    token.parse::<usize>().ok().and_then(|i| items.get(i)).map(|v| (v, v.line, v.column))
                }
                _ => None,
            };
            let Some((child, line, column)) = next else { break };
            node = child;
            depth += 1;
            at = (line, column);
        }
        (depth, at.0, at.1)
    }

    /// What kind of value this is, for messages ("expected a mapping, found a list").
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "nothing",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Number(_) => "a number",
            NodeValue::String(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The plain JSON value of this node, positions dropped.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            NodeValue::Null => serde_json::Value::Null,
            NodeValue::Bool(b) => serde_json::Value::Bool(*b),
            NodeValue::Number(n) => serde_json::Value::Number(n.clone()),
            NodeValue::String(s) => serde_json::Value::String(s.clone()),
            NodeValue::Seq(items) => serde_json::Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => {
                serde_json::Value::Object(entries.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect())
            }
        }
    }
}

struct Inner(NodeValue);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Inner>::deserialize(deserializer)?;
        Ok(Node { value: spanned.value.0, line: spanned.defined.line(), column: spanned.defined.column() })
    }
}

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(InnerVisitor)
    }
}

struct InnerVisitor;

impl<'de> Visitor<'de> for InnerVisitor {
    type Value = Inner;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Inner, E> {
        Ok(Inner(NodeValue::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Inner, E> {
        Ok(Inner(NodeValue::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Inner, D::Error> {
        Inner::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Inner, E> {
        Ok(Inner(NodeValue::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Inner, E> {
        Ok(Inner(NodeValue::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Inner, E> {
        Ok(Inner(NodeValue::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Inner, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Inner(NodeValue::Number(n)))
            .ok_or_else(|| E::custom("non-finite numbers are not allowed"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Inner, E> {
        Ok(Inner(NodeValue::String(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Inner, E> {
        Ok(Inner(NodeValue::String(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inner, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Inner(NodeValue::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inner, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Node>()?;
            entries.push((Key { name: key.value, line: key.defined.line(), column: key.defined.column() }, value));
        }
        Ok(Inner(NodeValue::Map(entries)))
    }
}

/// Serializes a value as one YAML document (no leading `---`).
pub fn to_yaml(value: &serde_json::Value) -> String {
    // Serializing a JSON value cannot fail: every key is a string and every number finite.
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_start_lines_and_skip_empty_ones() {
        let docs = parse_documents("f.yaml", "# c\na: 1\n---\n---\nb: 2\n").expect("parses");
        let lines: Vec<u64> = docs.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 5]);
    }

    #[test]
    fn legacy_octal_matches_kubectl() {
        let docs = parse_documents("f.yaml", "mode: 0644\n").expect("parses");
        assert_eq!(docs[0].value["mode"], 420);
    }

    #[test]
    fn node_positions_point_at_keys() {
        let node = Node::parse("c.yaml", "a:\n  bb: 1\n  cc: [x]\n").expect("parses");
        let NodeValue::Map(top) = &node.value else { panic!("map") };
        let NodeValue::Map(inner) = &top[0].1.value else { panic!("map") };
        assert_eq!((inner[1].0.name.as_str(), inner[1].0.line, inner[1].0.column), ("cc", 3, 3));
    }

    #[test]
    fn errors_are_one_line_with_location() {
        let err = parse_documents("bad.yaml", "a: [1\n").expect_err("fails");
        let text = err.to_string();
        assert!(text.starts_with("bad.yaml:1:4: "), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn large_generated_streams_are_accepted() {
        let text: String = (0..3000).map(|i| format!("---\nname: n{i}\nlist: [1, 2, 3]\n")).collect();
        assert_eq!(parse_documents("big.yaml", &text).expect("parses").len(), 3000);
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_documents("d.yaml", "a: 1\na: 2\n").expect_err("fails");
        assert!(err.to_string().contains("duplicate"), "{err}");
    }
}
