//! What the `secrets` commands print. Only `decrypt` prints plaintext, because that is what it
//! was asked to do; the values stay wrapped until here.

use std::io::{self, Write};
use std::path::Path;

use super::{Format, write_json};
use crate::secrets::Plaintext;

/// One line: the file and what was done to it.
pub fn write_secret_done(w: &mut dyn Write, file: &Path, said: &str) -> io::Result<()> {
    writeln!(w, "{}: {said}", file.display())
}

/// `secrets decrypt`: each file's documents, as YAML (several files headed by their names) or JSON
/// (one document as itself, one file's documents as a list, several files as a map by name).
pub fn write_decrypted(w: &mut dyn Write, files: Vec<(String, Vec<Plaintext>)>, format: Format) -> io::Result<()> {
    if !matches!(format, Format::Yaml | Format::Json) {
        return Err(format.unsupported("decrypted files"));
    }
    let decrypted: Vec<(String, Vec<serde_json::Value>)> =
        files.into_iter().map(|(name, docs)| (name, docs.into_iter().map(Plaintext::into_exposed).collect())).collect();
    if format == Format::Json {
        return match decrypted.as_slice() {
            [(_, docs)] if docs.len() == 1 => write_json(w, &docs[0]),
            [(_, docs)] => write_json(w, docs),
            _ => {
                let map: serde_json::Map<String, serde_json::Value> = decrypted
                    .into_iter()
                    .map(|(name, docs)| {
                        let value =
                            if docs.len() == 1 { docs.into_iter().next().unwrap_or_default() } else { docs.into() };
                        (name, value)
                    })
                    .collect();
                write_json(w, &map)
            }
        };
    }
    let several = decrypted.len() > 1;
    let mut first = true;
    for (name, docs) in &decrypted {
        for value in docs {
            if !first {
                writeln!(w, "---")?;
            }
            first = false;
            if several {
                writeln!(w, "# {name}")?;
            }
            w.write_all(crate::yaml::to_yaml(value).as_bytes())?;
        }
    }
    Ok(())
}
