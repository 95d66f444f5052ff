//! Promotion: which values move from the source environment's proven release to the
//! destination, and the smallest edit of the destination's own layer files that makes them so
//! — the value's scalar replaced where the overlay document sets it, or a kustomization's
//! `images:` entry — leaving every other byte of the file (comments, order, quoting) alone.

use serde::Serialize;

use crate::config::{Promoted, Promotion};
use crate::error::{Error, Result};
use crate::render::{ObjectId, Rendered};
use crate::yaml::{Node, NodeValue};

/// One value to promote, and where it is written.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub object: ObjectId,
    /// `container web image`, or the JSON pointer of a promoted field.
    pub field: String,
    pub old: String,
    pub new: String,
    /// The file edited (relative to the configuration root) and the line of the value.
    pub file: String,
    pub line: u64,
}

/// A value that differs between the two environments, before it is located in a file.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub object: ObjectId,
    pub what: Target,
    pub old: String,
    pub new: String,
}

impl Wanted {
    /// The change, once written at `file`:`line`.
    fn placed(&self, file: &str, line: u64) -> Change {
        Change {
            object: self.object.clone(),
            field: self.what.label(),
            old: self.old.clone(),
            new: self.new.clone(),
            file: file.to_string(),
            line,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Image { container: String },
    Field { pointer: String },
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Image { container } => format!("container {container} image"),
            Target::Field { pointer } => pointer.clone(),
        }
    }
}

/// Where a workload kind keeps its pod template's containers.
fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some(&["spec", "template", "spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        "Pod" => Some(&["spec"]),
        _ => None,
    }
}

fn images(body: &serde_json::Value, kind: &str) -> Vec<(String, String)> {
    let Some(path) = pod_spec_path(kind) else { return Vec::new() };
    let mut spec = body;
    for key in path {
        spec = &spec[*key];
    }
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            if let (Some(name), Some(image)) = (c["name"].as_str(), c["image"].as_str()) {
                out.push((name.to_string(), image.to_string()));
            }
        }
    }
    out
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The values of the source's release that the destination does not have yet.
pub fn wanted(rule: &Promotion, source: &Rendered, dest: &Rendered) -> Result<Vec<Wanted>> {
    let same = |a: &ObjectId, b: &ObjectId| a.group == b.group && a.kind == b.kind && a.name == b.name;
    let mut out = Vec::new();
    for what in &rule.what {
        match what {
            Promoted::Images => {
                for d in dest.objects.iter().filter(|o| pod_spec_path(&o.id.kind).is_some()) {
                    let Some(s) = source.objects.iter().find(|s| same(&s.id, &d.id)) else { continue };
                    let theirs = images(&s.body, &s.id.kind);
                    for (container, image) in images(&d.body, &d.id.kind) {
                        if let Some((_, new)) = theirs.iter().find(|(c, _)| *c == container)
                            && *new != image
                        {
                            out.push(Wanted {
                                object: d.id.clone(),
                                what: Target::Image { container },
                                old: image,
                                new: new.clone(),
                            });
                        }
                    }
                }
            }
            Promoted::Field { kind, name, namespace, pointer } => {
                let pick = |r: &Rendered| {
                    r.objects
                        .iter()
                        .find(|o| {
                            o.id.kind == *kind
                                && o.id.name == *name
                                && namespace.as_ref().is_none_or(|n| o.id.namespace.as_deref() == Some(n.as_str()))
                        })
                        .cloned()
                };
                let missing = |env: &str| Error::Usage {
                    message: format!(
                        "promotion: {env} renders no {kind} `{name}`; check `promotion.what` in cairn.yaml"
                    ),
                };
                let s = pick(source).ok_or_else(|| missing(&source.environment))?;
                let d = pick(dest).ok_or_else(|| missing(&dest.environment))?;
                if !s.secrets.is_empty() || !d.secrets.is_empty() || kind == "Secret" {
                    return Err(Error::Usage {
                        message: format!(
                            "promotion: {kind} `{name}` holds secrets; secrets are not promoted (each environment keeps its own)"
                        ),
                    });
                }
                let new = s.body.pointer(pointer).and_then(scalar_text).ok_or_else(|| Error::Usage {
                    message: format!(
                        "promotion: {kind} `{name}` of {} has no text, number or boolean at `{pointer}`",
                        source.environment
                    ),
                })?;
                let old = d.body.pointer(pointer).and_then(scalar_text).unwrap_or_default();
                if old != new {
                    out.push(Wanted {
                        object: d.id.clone(),
                        what: Target::Field { pointer: pointer.clone() },
                        old,
                        new,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A file of the destination's own layers, as read at the base revision.
pub struct OwnFile {
    pub path: String,
    pub text: String,
}

/// Locates each wanted value in the destination's own files and edits it there. `sources` are
/// the destination object's source documents (`file`, `line`), latest layer last.
pub fn edit(
    wanted: &[Wanted],
    sources: &dyn Fn(&ObjectId) -> Vec<(String, u64)>,
    files: &mut [OwnFile],
    kustomizations: &[usize],
    dest: &str,
) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    for w in wanted {
        let mut placed = None;
        // The latest own document that sets the value wins, as it does when rendering.
        for (file, line) in sources(&w.object).into_iter().rev() {
            let Some(index) = files.iter().position(|f| f.path == file) else { continue };
            if let Some((l, c)) = locate(&files[index], line, &w.what)? {
                placed = Some((index, l, c));
                break;
            }
        }
        if placed.is_none()
            && let Target::Image { .. } = &w.what
            && let Some(change) = edit_kustomization(w, files, kustomizations)?
        {
            changes.push(change);
            continue;
        }
        let Some((index, line, column)) = placed else {
            let from: Vec<String> = sources(&w.object).into_iter().map(|(f, l)| format!("{f}:{l}")).collect();
            return Err(Error::Usage {
                message: format!(
                    "promotion: {} {} of {dest} is not set in any of {dest}'s own layers (it comes from {}); set it in a document of {dest}'s own layer (a patch with the value), then promote again",
                    w.object,
                    w.what.label(),
                    if from.is_empty() { "nowhere".to_string() } else { from.join(", ") }
                ),
            });
        };
        files[index].text = replace_scalar(&files[index].text, line, column, &w.new, &files[index].path)?;
        changes.push(w.placed(&files[index].path, line));
    }
    Ok(changes)
}

/// Sets the image through a kustomization's `images:` entry, the latest layer first.
fn edit_kustomization(w: &Wanted, files: &mut [OwnFile], kustomizations: &[usize]) -> Result<Option<Change>> {
    for &index in kustomizations.iter().rev() {
        let Some((line, column, value)) = kustomize_image(&files[index], &w.old, &w.new)? else { continue };
        files[index].text = replace_scalar(&files[index].text, line, column, &value, &files[index].path)?;
        return Ok(Some(w.placed(&files[index].path, line)));
    }
    Ok(None)
}

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.value {
        NodeValue::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
        _ => None,
    }
}

/// The line and column of the value in the document of `file` that starts at `line`.
fn locate(file: &OwnFile, line: u64, what: &Target) -> Result<Option<(u64, u64)>> {
    let docs = Node::parse_documents(&file.path, &file.text)?;
    // A document is named by the line its source reference gives: its first line.
    let Some(doc) = docs.iter().rev().find(|d| d.line <= line) else { return Ok(None) };
    let kind = get(doc, "kind").and_then(Node::as_str).unwrap_or_default().to_string();
    let found = match what {
        Target::Image { container } => {
            let Some(path) = pod_spec_path(&kind) else { return Ok(None) };
            let mut spec = Some(doc);
            for key in path {
                spec = spec.and_then(|n| get(n, key));
            }
            let mut hit = None;
            for list in ["initContainers", "containers"] {
                if let Some(NodeValue::Seq(items)) = spec.and_then(|s| get(s, list)).map(|n| &n.value) {
                    for item in items {
                        if get(item, "name").and_then(Node::as_str) == Some(container.as_str()) {
                            hit = get(item, "image");
                        }
                    }
                }
            }
            hit
        }
        Target::Field { pointer } => {
            let mut node = Some(doc);
            for token in pointer.split('/').skip(1) {
                let token = token.replace("~1", "/").replace("~0", "~");
                node = node.and_then(|n| match &n.value {
                    NodeValue::Map(_) => get(n, &token),
                    NodeValue::Seq(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                });
            }
            node
        }
    };
    Ok(found.filter(|n| !matches!(n.value, NodeValue::Map(_) | NodeValue::Seq(_))).map(|n| (n.line, n.column)))
}

/// `name:tag` / `name@digest` split; a registry port (`host:5000/app`) is not a tag.
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, None, Some(digest));
    }
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], Some(&image[i + 1..]), None),
        _ => (image, None, None),
    }
}

/// The `images:` entry of a kustomization that produces `old`, and the field to set for `new`.
fn kustomize_image(file: &OwnFile, old: &str, new: &str) -> Result<Option<(u64, u64, String)>> {
    let root = Node::parse(&file.path, &file.text)?;
    let Some(NodeValue::Seq(entries)) = get(&root, "images").map(|n| &n.value) else { return Ok(None) };
    let (old_name, _, _) = split_image(old);
    let (new_name, new_tag, new_digest) = split_image(new);
    for entry in entries {
        let name = get(entry, "name").and_then(Node::as_str);
        let new_name_node = get(entry, "newName");
        let produces = new_name_node.and_then(Node::as_str).or(name);
        if produces != Some(old_name) {
            continue;
        }
        if new_name != old_name {
            // The repository itself moves: only an entry that already renames can follow.
            return match new_name_node {
                Some(n) if new_tag.is_none() && new_digest.is_none() => {
                    Ok(Some((n.line, n.column, new_name.to_string())))
                }
                _ => Err(Error::Usage {
                    message: format!(
                        "promotion: {}: the image moves from {old_name} to {new_name}; edit the `images:` entry by hand",
                        file.path
                    ),
                }),
            };
        }
        let field = match (new_tag, new_digest) {
            (Some(tag), _) => get(entry, "newTag").map(|n| (n, tag)),
            (_, Some(digest)) => get(entry, "digest").map(|n| (n, digest)),
            _ => None,
        };
        return match field {
            Some((node, value)) => Ok(Some((node.line, node.column, value.to_string()))),
            None => Err(Error::Usage {
                message: format!(
                    "promotion: {}: the `images:` entry for {old_name} has no `{}` to set; add it, then promote again",
                    file.path,
                    if new_tag.is_some() { "newTag" } else { "digest" }
                ),
            }),
        };
    }
    Ok(None)
}

/// Replaces the scalar starting at `line`:`column` (1-based) with `value`, in the scalar's own
/// quoting style, and nothing else.
pub fn replace_scalar(text: &str, line: u64, column: u64, value: &str, file: &str) -> Result<String> {
    let bad = |why: &str| Error::Usage { message: format!("promotion: {file}:{line}: {why}") };
    let mut offset = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            break;
        }
        offset += l.len();
    }
    let rest = &text[offset..];
    let this_line = rest.split('\n').next().unwrap_or_default();
    let start = this_line
        .char_indices()
        .nth(column.saturating_sub(1) as usize)
        .map(|(b, _)| b)
        .ok_or_else(|| bad("the value is not where the file says"))?;
    let token = &this_line[start..];
    let (len, replacement) = match token.chars().next() {
        Some('"') => {
            let mut escaped = false;
            let mut end = None;
            for (i, c) in token.char_indices().skip(1) {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end.ok_or_else(|| bad("a double-quoted value spans lines; edit it by hand"))?;
            (end, serde_json::to_string(value).unwrap_or_default())
        }
        Some('\'') => {
            let bytes = token.as_bytes();
            let mut i = 1;
            let mut end = None;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    end = Some(i + 1);
                    break;
                }
                i += 1;
            }
            let end = end.ok_or_else(|| bad("a single-quoted value spans lines; edit it by hand"))?;
            (end, format!("'{}'", value.replace('\'', "''")))
        }
        Some('|' | '>') => return Err(bad("the value is a block scalar; edit it by hand")),
        _ => {
            let end = token.find(" #").unwrap_or(token.len());
            let plain = token[..end].trim_end();
            let plain_len = plain.len();
            let replacement =
                if plain_safe(value) { value.to_string() } else { serde_json::to_string(value).unwrap_or_default() };
            (plain_len, replacement)
        }
    };
    let at = offset + start;
    let mut out = String::with_capacity(text.len() + replacement.len());
    out.push_str(&text[..at]);
    out.push_str(&replacement);
    out.push_str(&text[at + len..]);
    Ok(out)
}

/// Whether `value` reads back as the same string when written without quotes.
fn plain_safe(value: &str) -> bool {
    let first_ok = value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || "_./".contains(c));
    let chars_ok = value.chars().all(|c| c.is_ascii_alphanumeric() || "_./:@+-=".contains(c));
    let typed = value.parse::<f64>().is_ok()
        || ["true", "false", "yes", "no", "on", "off", "null", "~"].contains(&value.to_ascii_lowercase().as_str());
    first_ok && chars_ok && !typed && !value.contains(": ") && !value.ends_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scalar_is_replaced_in_its_own_style_and_nothing_else_moves() {
        let text =
            "# the web tier\nspec:\n  image: example.org/web:1.0.0   # pinned\n  other: 'a:1'\n  quoted: \"x:1\"\n";
        let out = replace_scalar(text, 3, 10, "example.org/web:2.0.0", "f.yaml").expect("edit");
        assert_eq!(out, text.replace("web:1.0.0", "web:2.0.0"));
        let out = replace_scalar(text, 4, 10, "it's", "f.yaml").expect("edit");
        assert!(out.contains("other: 'it''s'\n"), "{out}");
        let out = replace_scalar(text, 5, 11, "y\"2", "f.yaml").expect("edit");
        assert!(out.contains("quoted: \"y\\\"2\"\n"), "{out}");
        // A tag that would read back as a number is quoted.
        let out = replace_scalar("tag: v1\n", 1, 6, "1.10", "f.yaml").expect("edit");
        assert_eq!(out, "tag: \"1.10\"\n");
    }

    #[test]
    fn images_split_at_the_tag_not_the_registry_port() {
        assert_eq!(split_image("host:5000/app:1.2"), ("host:5000/app", Some("1.2"), None));
        assert_eq!(split_image("host:5000/app"), ("host:5000/app", None, None));
        assert_eq!(split_image("app@sha256:ab"), ("app", None, Some("sha256:ab")));
    }
}
