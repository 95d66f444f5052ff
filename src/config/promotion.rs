//! `promotion:` of an environment: which environment's proven versions it takes, on what
//! evidence, and which values.

use std::time::Duration;

use serde::Serialize;

use super::verify::Located;
use crate::error::Result;
use crate::yaml::{Key, Node, NodeValue};

#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    /// The environment whose releases are promoted from.
    pub from: String,
    /// What a source release needs before it is promoted.
    pub require: Evidence,
    /// How long the source release must have been current there.
    #[serde(serialize_with = "crate::duration::serialize_text")]
    pub soak: Duration,
    pub what: Vec<Promoted>,
    pub line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// Its last verification passed (the default).
    Verified,
    /// It was applied successfully; for environments without checks.
    Applied,
}

/// What is promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Promoted {
    /// Every container image of every workload (containers and init containers).
    Images,
    /// One field of the selected objects: `{select: {kind, name, namespace?}, pointer}`.
    Field { kind: String, name: String, namespace: Option<String>, pointer: String },
}

fn find<'a>(map: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    map.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

pub(crate) fn parse_promotion(loc: &Located, node: &Node, what: &str) -> Result<Promotion> {
    let map = loc.map(node, &format!("{what}: `promotion`"))?;
    loc.keys(map, &["from", "require", "soak", "what"], &format!("{what}: `promotion`"))?;
    let from = match find(map, "from") {
        Some(v) => loc.string(v, &format!("{what}: `promotion.from`"))?,
        None => return Err(loc.at(node, &format!("{what}: `promotion` needs `from` (the environment promoted from)"))),
    };
    let require = match find(map, "require") {
        None => Evidence::Verified,
        Some(v) => match v.as_str() {
            Some("verified") => Evidence::Verified,
            Some("applied") => Evidence::Applied,
            _ => {
                return Err(
                    loc.at(v, &format!("{what}: `promotion.require` must be `verified` (the default) or `applied`"))
                );
            }
        },
    };
    let soak = match find(map, "soak") {
        None => Duration::ZERO,
        Some(v) => loc.duration(v, &format!("{what}: `promotion.soak`"))?,
    };
    let what_list = match find(map, "what") {
        None => vec![Promoted::Images],
        Some(v) if v.as_str() == Some("images") => vec![Promoted::Images],
        Some(v) => {
            let NodeValue::Seq(items) = &v.value else {
                return Err(loc.at(
                    v,
                    &format!("{what}: `promotion.what` must be `images` or a list of `images` and `{{select, pointer}}` fields"),
                ));
            };
            let mut out = Vec::new();
            for item in items {
                if item.as_str() == Some("images") {
                    out.push(Promoted::Images);
                    continue;
                }
                let field = loc.map(item, &format!("{what}: a `promotion.what` entry"))?;
                loc.keys(field, &["select", "pointer"], &format!("{what}: a `promotion.what` entry"))?;
                let select = find(field, "select").ok_or_else(|| {
                    loc.at(item, &format!("{what}: a `promotion.what` entry needs `select` ({{kind, name}})"))
                })?;
                let smap = loc.map(select, &format!("{what}: `select`"))?;
                loc.keys(smap, &["kind", "name", "namespace"], &format!("{what}: `select`"))?;
                let text = |k: &str| find(smap, k).map(|v| loc.string(v, &format!("{what}: `select.{k}`"))).transpose();
                let (Some(kind), Some(name)) = (text("kind")?, text("name")?) else {
                    return Err(loc.at(select, &format!("{what}: `select` needs `kind` and `name`")));
                };
                let pointer_node = find(field, "pointer")
                    .ok_or_else(|| loc.at(item, &format!("{what}: a `promotion.what` entry needs `pointer`")))?;
                let pointer = loc.string(pointer_node, &format!("{what}: `pointer`"))?;
                if !pointer.starts_with('/') {
                    return Err(loc.at(
                        pointer_node,
                        &format!("{what}: `pointer` must be a JSON pointer such as `/data/VERSION`"),
                    ));
                }
                out.push(Promoted::Field { kind, name, namespace: text("namespace")?, pointer });
            }
            if out.is_empty() {
                return Err(loc.at(v, &format!("{what}: `promotion.what` is empty")));
            }
            out
        }
    };
    Ok(Promotion { from, require, soak, what: what_list, line: node.line })
}
