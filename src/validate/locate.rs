//! Maps a JSON pointer in a rendered object back to the layer document and key that produced the
//! value: the last layer that wrote the full pointer wins (a value overridden in an environment
//! layer is reported there, not in the base); when no layer wrote it (a missing required field)
//! the deepest existing parent is used.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::render::SourceRef;
use crate::repo::Snapshot;
use crate::yaml::Node;

pub(crate) struct Place {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub excerpt: Option<String>,
}

struct ParsedFile {
    lines: Vec<String>,
    /// Documents by the line they start on.
    documents: HashMap<u64, Node>,
}

pub(crate) struct Locator<'a> {
    snapshot: &'a Snapshot,
    files: HashMap<String, ParsedFile>,
}

impl<'a> Locator<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Locator<'a> {
        Locator { snapshot, files: HashMap::new() }
    }

    fn file(&mut self, path: &str) -> Result<&ParsedFile> {
        if !self.files.contains_key(path) {
            let bytes = self.snapshot.read(path)?.unwrap_or_default();
            let text = String::from_utf8(bytes).map_err(|_| Error::Document {
                file: path.to_string(),
                line: 1,
                message: "not valid UTF-8".into(),
            })?;
            // A source that is not YAML (a chart's template, which helm rendered) has no places
            // to point into; findings then name the template and the document's line.
            let documents = Node::parse_documents(path, &text)
                .map(|docs| docs.into_iter().map(|n| (n.line, n)).collect())
                .unwrap_or_default();
            let lines = text.lines().map(str::to_string).collect();
            self.files.insert(path.to_string(), ParsedFile { lines, documents });
        }
        Ok(&self.files[path])
    }

    /// Where the value at `pointer` came from.
    pub fn locate(&mut self, sources: &[SourceRef], pointer: &str) -> Result<Place> {
        let wanted = pointer.split('/').skip(1).count();
        let mut best: Option<(usize, &SourceRef, u64, u64)> = None;
        for source in sources.iter().rev() {
            let file = self.file(&source.file)?;
            let Some(doc) = file.documents.get(&source.line) else {
                continue;
            };
            let (depth, line, column) = doc.walk(pointer);
            if best.as_ref().is_none_or(|b| depth > b.0) {
                best = Some((depth, source, line, column));
            }
            if depth == wanted {
                break;
            }
        }
        let Some((_, source, line, column)) = best else {
            let source = sources.last().map_or_else(|| SourceRef { file: String::new(), line: 0 }, Clone::clone);
            return Ok(Place { file: source.file, line: source.line, column: 1, excerpt: None });
        };
        let excerpt = self.files.get(&source.file).and_then(|f| f.lines.get(line.saturating_sub(1) as usize).cloned());
        Ok(Place { file: source.file.clone(), line, column, excerpt })
    }
}
