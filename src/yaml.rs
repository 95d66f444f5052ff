//! YAML reading shared by every stage, on the saphyr event parser: multi-document streams, a
//! located tree (line and column of every key and value) and plain JSON values. Scalars are
//! resolved the way `kubectl` reads manifests (go-yaml v2, YAML 1.1 rules), not by YAML 1.2: a
//! leading-zero number such as `defaultMode: 0644` is octal (420) and `yes`/`no`/`on`/`off` are
//! booleans. Reading them otherwise would silently change what reaches the cluster.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

use crate::error::Error;

/// One document of a multi-document stream and the line it starts on (1-based).
#[derive(Debug, Clone)]
pub struct Document {
    pub value: serde_json::Value,
    pub line: u64,
}

/// Parses a multi-document YAML stream into JSON values. Empty documents are skipped.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, Error> {
    Ok(Node::parse_documents(file, text)?
        .into_iter()
        .map(|node| {
            let line = node.line;
            Document { value: node.into_json(), line }
        })
        .collect())
}

/// As [`parse_documents`], with YAML 1.2 booleans (only `true`/`false`): how kustomize reads
/// the files of a kustomization (`y` and `on` are strings there). Integers keep the rules kubectl
/// applies to kustomize's output (`0644` is octal).
pub fn parse_documents_yaml12(file: &str, text: &str) -> Result<Vec<Document>, Error> {
    let mut loader = Loader::new(file);
    loader.yaml12 = true;
    Ok(loader
        .load(text)?
        .into_iter()
        .map(|node| {
            let line = node.line;
            Document { value: node.into_json(), line }
        })
        .collect())
}

/// A YAML node with the position it was written at.
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

/// Expanding aliases may not create more nodes than this in one file (alias bombs).
const MAX_ALIAS_NODES: usize = 1_000_000;

impl Node {
    /// Parses a multi-document stream into located trees; empty documents are skipped.
    pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Node>, Error> {
        Loader::new(file).load(text)
    }

    /// Parses a file that holds at most one document (configuration files).
    pub fn parse(file: &str, text: &str) -> Result<Node, Error> {
        let mut loader = Loader::new(file);
        loader.compact = true;
        Node::parse_one(loader, text)
    }

    /// As [`Node::parse`], handing each entry of the map under the top-level key `section` to
    /// `each` as soon as it is read, and keeping only a placeholder for it (`null`, at the
    /// value's position): `cairn.yaml` with 10,000 environments never holds all their trees at
    /// once. Entries merged in with `<<` are not handed over; they stay in the tree, last.
    pub fn parse_streaming(
        file: &str,
        text: &str,
        section: &str,
        each: &mut dyn FnMut(&Key, Node),
    ) -> Result<Node, Error> {
        let mut loader = Loader::new(file);
        loader.compact = true;
        loader.hook = Some((section, each));
        Node::parse_one(loader, text)
    }

    /// As [`Node::parse`], with YAML 1.2 booleans (only `true`/`false`): how kustomize reads a
    /// kustomization, where `on` or `y` is a string.
    pub fn parse_yaml12(file: &str, text: &str) -> Result<Node, Error> {
        let mut loader = Loader::new(file);
        loader.yaml12 = true;
        Node::parse_one(loader, text)
    }

    fn parse_one(loader: Loader<'_>, text: &str) -> Result<Node, Error> {
        let file = loader.file;
        let mut docs = loader.load(text)?;
        if docs.len() > 1 {
            return Err(Error::Yaml {
                file: file.to_string(),
                line: docs[1].line,
                column: docs[1].column,
                message: "expected one YAML document, found several".into(),
            });
        }
        Ok(docs.pop().unwrap_or(Node { value: NodeValue::Null, line: 1, column: 1 }))
    }

    /// The node at an RFC 6901 pointer, as far as it exists: the deepest node reached, the
    /// position of the key (or list item) that leads to it, and how many tokens matched.
    pub fn walk(&self, pointer: &str) -> (usize, u64, u64) {
        let mut node = self;
        let mut depth = 0;
        let mut at = (self.line, self.column);
        for token in pointer.split('/').skip(1) {
            let token = crate::pointer::unescape(token);
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

    /// The plain JSON value of this node, positions dropped, without copying strings.
    pub fn into_json(self) -> serde_json::Value {
        match self.value {
            NodeValue::Null => serde_json::Value::Null,
            NodeValue::Bool(b) => serde_json::Value::Bool(b),
            NodeValue::Number(n) => serde_json::Value::Number(n),
            NodeValue::String(s) => serde_json::Value::String(s),
            NodeValue::Seq(items) => serde_json::Value::Array(items.into_iter().map(Node::into_json).collect()),
            NodeValue::Map(entries) => {
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.name, v.into_json())).collect())
            }
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

/// Builds located trees from parser events: anchors and aliases, YAML 1.1 merge keys (`<<`),
/// duplicate keys rejected, scalars resolved as kubectl does.
struct Loader<'f> {
    file: &'f str,
    anchors: HashMap<usize, (Node, usize)>,
    alias_nodes: usize,
    stack: Vec<Frame>,
    /// Only `true`/`false` (any case form) are booleans.
    yaml12: bool,
    /// Lists and maps are trimmed to their length as they close: for a tree that is kept while
    /// it is read (a configuration file of 10,000 environments), not one converted at once.
    compact: bool,
    /// Entries of the map under this top-level key are handed over as they are read (see
    /// [`Node::parse_streaming`]).
    hook: Option<(&'f str, &'f mut EntryHook<'f>)>,
}

/// What [`Node::parse_streaming`] hands each entry of the streamed section to.
type EntryHook<'f> = dyn FnMut(&Key, Node) + 'f;

enum Frame {
    Seq {
        at: (u64, u64),
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        at: (u64, u64),
        anchor: usize,
        entries: Vec<(Key, Node)>,
        merged: Vec<(Key, Node)>,
        key: Option<Key>,
        /// Key name → its index in `entries`, once the map is large enough that scanning for a
        /// duplicate would cost the square of its size (`cairn.yaml` with thousands of
        /// environments).
        index: Option<HashMap<String, usize>>,
    },
}

/// Maps with more keys than this find duplicates by hash instead of by scanning.
const INDEXED_MAP: usize = 32;

fn position(span: &Span) -> (u64, u64) {
    (span.start.line() as u64, span.start.col() as u64 + 1)
}

fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        NodeValue::Seq(items) => items.iter().map(count_nodes).sum(),
        NodeValue::Map(entries) => entries.iter().map(|(_, v)| count_nodes(v)).sum(),
        _ => 0,
    }
}

impl<'f> Loader<'f> {
    fn new(file: &'f str) -> Loader<'f> {
        Loader {
            file,
            anchors: HashMap::new(),
            alias_nodes: 0,
            stack: Vec::new(),
            yaml12: false,
            compact: false,
            hook: None,
        }
    }

    fn error(&self, (line, column): (u64, u64), message: impl Into<String>) -> Error {
        Error::Yaml { file: self.file.to_string(), line, column, message: message.into() }
    }

    fn scan_error(&self, e: &ScanError) -> Error {
        let m = e.marker();
        let at = (m.line() as u64, m.col() as u64 + 1);
        // An unclosed `[` or `{` is found where the input ends; point at the opener instead.
        let opener = match self.stack.last() {
            Some(Frame::Seq { at, .. }) if e.info().contains("flow sequence") => Some((*at, '[')),
            Some(Frame::Map { at, .. }) if e.info().contains("flow mapping") => Some((*at, '{')),
            _ => None,
        };
        match opener {
            Some((start, bracket)) => {
                self.error(start, format!("`{bracket}` is not closed ({} at line {}, column {})", e.info(), at.0, at.1))
            }
            None => self.error(at, e.info()),
        }
    }

    fn load(mut self, text: &str) -> Result<Vec<Node>, Error> {
        let mut documents = Vec::new();
        let mut root: Option<Node> = None;
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(|e| self.scan_error(&e))?;
            let at = position(&span);
            match event {
                Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    root = None;
                    self.anchors.clear();
                }
                Event::DocumentEnd => {
                    if let Some(node) = root.take()
                        && node.value != NodeValue::Null
                    {
                        documents.push(node);
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    // Keys keep the text they were written with: `y:` or `on:` stay keys named
                    // `y` and `on` (Kubernetes fields are strings), only values are resolved.
                    let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                    let value = if is_key {
                        // A copy of exactly the key's length: the scanner's own buffer has room
                        // for a long scalar (about 130 bytes a key), and keys move into every
                        // rendered object.
                        NodeValue::String(String::from(&*text))
                    } else {
                        let tag = tag.map(|t| t.suffix.clone());
                        self.resolve(&text, style, tag.as_deref(), at)?
                    };
                    self.complete(Node { value, line: at.0, column: at.1 }, anchor, &mut root)?;
                }
                Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq { at, anchor, items: Vec::new() }),
                Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                    at,
                    anchor,
                    entries: Vec::new(),
                    merged: Vec::new(),
                    key: None,
                    index: None,
                }),
                Event::SequenceEnd | Event::MappingEnd => {
                    let (node, anchor) = match self.stack.pop() {
                        Some(Frame::Seq { at, anchor, mut items }) => {
                            if self.compact {
                                items.shrink_to_fit();
                            }
                            (Node { value: NodeValue::Seq(items), line: at.0, column: at.1 }, anchor)
                        }
                        Some(Frame::Map { at, anchor, mut entries, merged, .. }) => {
                            // Explicit keys win over merged ones, whatever their order.
                            for (k, v) in merged {
                                if !entries.iter().any(|(e, _)| e.name == k.name) {
                                    entries.push((k, v));
                                }
                            }
                            if self.compact {
                                entries.shrink_to_fit();
                            }
                            (Node { value: NodeValue::Map(entries), line: at.0, column: at.1 }, anchor)
                        }
                        None => return Err(self.error(at, "unbalanced collection end")),
                    };
                    self.complete(node, anchor, &mut root)?;
                }
                Event::Alias(id) => {
                    let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                        return Err(self.error(at, "alias to an unknown anchor"));
                    };
                    self.alias_nodes += size;
                    if self.alias_nodes > MAX_ALIAS_NODES {
                        return Err(self.error(at, "aliases expand to too many nodes (possible alias bomb)"));
                    }
                    let node = self.anchors[&id].0.clone();
                    self.complete(Node { line: at.0, column: at.1, ..node }, 0, &mut root)?;
                }
            }
        }
        Ok(documents)
    }

    /// Attaches a finished node to its parent (or makes it the document).
    fn complete(&mut self, node: Node, anchor: usize, root: &mut Option<Node>) -> Result<(), Error> {
        if anchor != 0 {
            let size = count_nodes(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let file = self.file;
        // An entry of the streamed section: the value of a key of the map under the top-level
        // key the hook names.
        let streamed = match (&self.hook, self.stack.as_slice()) {
            (Some((section, _)), [Frame::Map { key: Some(top), .. }, Frame::Map { key: Some(entry), .. }]) => {
                top.name == *section && entry.name != "<<"
            }
            _ => false,
        };
        match self.stack.last_mut() {
            None => *root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, merged, key, index, .. }) => match key.take() {
                None => {
                    let name = match node.value {
                        NodeValue::String(s) => s,
                        NodeValue::Number(n) => n.to_string(),
                        NodeValue::Bool(b) => b.to_string(),
                        NodeValue::Null => "null".to_string(),
                        _ => {
                            return Err(Error::Yaml {
                                file: file.to_string(),
                                line: node.line,
                                column: node.column,
                                message: "a mapping key must be a scalar".into(),
                            });
                        }
                    };
                    let earlier = match index {
                        Some(index) => index.get(&name).map(|&i| &entries[i].0),
                        None => entries.iter().find(|(k, _)| k.name == name).map(|(k, _)| k),
                    };
                    if name != "<<"
                        && let Some(first) = earlier
                    {
                        return Err(Error::Yaml {
                            file: file.to_string(),
                            line: node.line,
                            column: node.column,
                            message: format!("duplicate key `{name}` (first at line {}); remove one", first.line),
                        });
                    }
                    *key = Some(Key { name, line: node.line, column: node.column });
                }
                Some(k) if k.name == "<<" => {
                    let maps = match node.value {
                        NodeValue::Map(m) => vec![m],
                        NodeValue::Seq(items) => items
                            .into_iter()
                            .filter_map(|n| match n.value {
                                NodeValue::Map(m) => Some(m),
                                _ => None,
                            })
                            .collect(),
                        _ => {
                            return Err(Error::Yaml {
                                file: file.to_string(),
                                line: k.line,
                                column: k.column,
                                message: "a merge key `<<` needs a mapping or a list of mappings".into(),
                            });
                        }
                    };
                    // Earlier maps in a merge list win over later ones.
                    for map in maps {
                        for (mk, mv) in map {
                            if !merged.iter().any(|(e, _)| e.name == mk.name) {
                                merged.push((mk, mv));
                            }
                        }
                    }
                }
                Some(k) => {
                    if let Some(index) = index {
                        index.insert(k.name.clone(), entries.len());
                    } else if entries.len() >= INDEXED_MAP {
                        let mut built: HashMap<String, usize> =
                            entries.iter().enumerate().map(|(i, (k, _))| (k.name.clone(), i)).collect();
                        built.insert(k.name.clone(), entries.len());
                        *index = Some(built);
                    }
                    let node = match &mut self.hook {
                        Some((_, each)) if streamed => {
                            let placeholder = Node { value: NodeValue::Null, line: node.line, column: node.column };
                            each(&k, node);
                            placeholder
                        }
                        _ => node,
                    };
                    entries.push((k, node));
                }
            },
        }
        Ok(())
    }

    /// Resolves a scalar the way go-yaml v2 (and so kubectl) does.
    fn resolve(&self, text: &str, style: ScalarStyle, tag: Option<&str>, at: (u64, u64)) -> Result<NodeValue, Error> {
        let string = || NodeValue::String(text.to_string());
        match tag {
            Some("str") | Some("binary") => return Ok(string()),
            Some("null") => return Ok(NodeValue::Null),
            Some("bool") => {
                return resolve_bool(text)
                    .map(NodeValue::Bool)
                    .ok_or_else(|| self.error(at, format!("`{text}` is not a boolean")));
            }
            Some("int") => {
                return resolve_int(text).ok_or_else(|| self.error(at, format!("`{text}` is not an integer")));
            }
            Some("float") => {
                return resolve_number(text)
                    .or_else(|| resolve_int(text))
                    .ok_or_else(|| self.error(at, format!("`{text}` is not a number")));
            }
            _ => {}
        }
        if style != ScalarStyle::Plain {
            return Ok(string());
        }
        if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
            return Ok(NodeValue::Null);
        }
        if let Some(b) = resolve_bool(text)
            .filter(|_| !self.yaml12 || matches!(text, "true" | "True" | "TRUE" | "false" | "False" | "FALSE"))
        {
            return Ok(NodeValue::Bool(b));
        }
        if matches!(
            text,
            ".inf"
                | ".Inf"
                | ".INF"
                | "+.inf"
                | "+.Inf"
                | "+.INF"
                | "-.inf"
                | "-.Inf"
                | "-.INF"
                | ".nan"
                | ".NaN"
                | ".NAN"
        ) {
            return Err(self.error(at, format!("`{text}` cannot be represented in JSON; quote it to keep it as text")));
        }
        // Most scalars are words; only text that starts like a number can be one.
        let numeric = text.as_bytes().first().is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'));
        if !numeric {
            return Ok(string());
        }
        Ok(resolve_int(text).or_else(|| resolve_number(text)).unwrap_or_else(string))
    }
}

/// YAML 1.1 booleans, as go-yaml v2 reads them.
fn resolve_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Integers as Go's `strconv.ParseInt(s, 0, 64)` after removing `_`: decimal, `0x` hex, `0o` or
/// leading-zero octal, `0b` binary, optional sign; too large for i64 falls back to u64.
fn resolve_int(text: &str) -> Option<NodeValue> {
    let cleaned: std::borrow::Cow<str> = if text.contains('_') { text.replace('_', "").into() } else { text.into() };
    let (negative, digits) = match cleaned.as_bytes().first() {
        Some(b'-') => (true, &cleaned[1..]),
        Some(b'+') => (false, &cleaned[1..]),
        _ => (false, &*cleaned),
    };
    if digits.is_empty() {
        return None;
    }
    let (radix, body) = if let Some(rest) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0o").or_else(|| digits.strip_prefix("0O")) {
        (8, rest)
    } else if let Some(rest) = digits.strip_prefix("0b").or_else(|| digits.strip_prefix("0B")) {
        (2, rest)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        let value = i64::try_from(magnitude).ok().map(|m| -m).or((magnitude == 1 << 63).then_some(i64::MIN))?;
        Some(NodeValue::Number(value.into()))
    } else {
        Some(NodeValue::Number(magnitude.into()))
    }
}

/// Floats as go-yaml v2 recognises them: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn resolve_number(text: &str) -> Option<NodeValue> {
    let cleaned: std::borrow::Cow<str> = if text.contains('_') { text.replace('_', "").into() } else { text.into() };
    let body = cleaned.strip_prefix(['-', '+']).unwrap_or(&cleaned);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (whole.is_empty() && !fraction.is_empty() || !whole.is_empty())
                && whole.chars().all(|c| c.is_ascii_digit())
                && fraction.chars().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.chars().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
    });
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    let value: f64 = cleaned.parse().ok()?;
    serde_json::Number::from_f64(value).map(NodeValue::Number)
}

/// Serializes a value as one YAML document (no leading `---`).
pub fn to_yaml(value: &serde_json::Value) -> String {
    // Serializing a JSON value cannot fail: every key is a string and every number finite.
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

/// YAML laid out as sops writes it (4-space indentation, list items indented under their key,
/// long strings on one line), so a file cairn re-encrypts differs from the one sops wrote only
/// where values changed.
pub fn to_sops_yaml(value: &serde_json::Value) -> String {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.indent_step = 4;
    options.compact_list_indent = false;
    // Multi-line strings (armored keys) as literal blocks; long lines never folded.
    options.folded_wrap_chars = usize::MAX;
    serde_saphyr::to_string_with_options(value, options).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> serde_json::Value {
        let mut docs = parse_documents("t.yaml", text).expect("parses");
        assert_eq!(docs.len(), 1);
        docs.remove(0).value
    }

    #[test]
    fn documents_keep_their_start_lines_and_skip_empty_ones() {
        let docs = parse_documents("f.yaml", "# c\na: 1\n---\n---\nb: 2\n").expect("parses");
        let lines: Vec<u64> = docs.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 5]);
    }

    #[test]
    fn scalars_resolve_as_kubectl_reads_them() {
        assert_eq!(
            one(
                "a: 0644\nb: 0x1F\nc: -12\nd: 1_000\ne: 1.5\nf: 1e3\ng: yes\nh: off\ni: ~\nj: \"0644\"\nk: 08\nl: 12:30\nm: '1'\nn: !!str 5\no: .5\n"
            ),
            json!({"a": 420, "b": 31, "c": -12, "d": 1000, "e": 1.5, "f": 1000.0, "g": true, "h": false, "i": null,
                   "j": "0644", "k": 8.0, "l": "12:30", "m": "1", "n": "5", "o": 0.5})
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        assert_eq!(
            one("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b]\n"),
            json!({"base": {"x": 1, "y": 2}, "other": {"y": 3, "x": 1}, "list": [{"x": 1, "y": 2}]})
        );
    }

    #[test]
    fn node_positions_point_at_keys() {
        let node = Node::parse("c.yaml", "a:\n  bb: 1\n  cc: [x]\n").expect("parses");
        let NodeValue::Map(top) = &node.value else { panic!("map") };
        let NodeValue::Map(inner) = &top[0].1.value else { panic!("map") };
        assert_eq!((inner[1].0.name.as_str(), inner[1].0.line, inner[1].0.column), ("cc", 3, 3));
        assert_eq!(node.walk("/a/cc/0"), (3, 3, 8));
        assert_eq!(node.walk("/a/missing"), (1, 1, 1));
    }

    #[test]
    fn errors_are_one_line_with_location() {
        let err = parse_documents("bad.yaml", "a: [1\n").expect_err("fails");
        let text = err.to_string();
        assert!(text.starts_with("bad.yaml:"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_documents("d.yaml", "a: 1\nb: 2\na: 2\n").expect_err("fails");
        assert_eq!(err.to_string(), "d.yaml:3:1: duplicate key `a` (first at line 1); remove one");
        // A large map finds them by hash, with the same message.
        let mut big: String = (0..100).map(|i| format!("k{i}: {i}\n")).collect();
        big.push_str("k7: again\n");
        let err = parse_documents("big.yaml", &big).expect_err("fails");
        assert_eq!(err.to_string(), "big.yaml:101:1: duplicate key `k7` (first at line 8); remove one");
        let ok: String = (0..100).map(|i| format!("k{i}: {i}\n")).collect();
        assert_eq!(one(&ok).as_object().map(|m| m.len()), Some(100));
    }

    #[test]
    fn alias_bombs_are_stopped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let err = parse_documents("bomb.yaml", &text).expect_err("refused");
        assert!(err.to_string().contains("alias bomb"), "{err}");
    }

    #[test]
    fn large_generated_streams_are_accepted() {
        let text: String = (0..3000).map(|i| format!("---\nname: n{i}\nlist: [1, 2, 3]\n")).collect();
        assert_eq!(parse_documents("big.yaml", &text).expect("parses").len(), 3000);
    }

    #[test]
    fn infinities_are_refused() {
        let err = parse_documents("f.yaml", "a: .inf\n").expect_err("refused");
        assert!(err.to_string().contains("cannot be represented in JSON"), "{err}");
    }
}
