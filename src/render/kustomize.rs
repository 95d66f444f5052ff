//! kustomize layers, built natively: a layer directory that holds a `kustomization.yaml` is built
//! the way `kustomize build` builds it, and its output objects are the layer's documents.
//!
//! The build follows kustomize's order. For each kustomization: its `resources` (files, and
//! directories that are kustomizations, built recursively), its transformer configuration
//! (`configurations`, `crds`), its generators, its `components` (each runs on everything
//! gathered so far), then its transformers in kustomize's fixed order — patchesStrategicMerge,
//! patches, namespace, namePrefix, nameSuffix, labels and commonLabels, commonAnnotations,
//! patchesJson6902, replicas, images, replacements. At the top level only: content-hash suffixes
//! on generated names, name references fixed to the final names, `vars` substituted, and
//! objects marked `config.kubernetes.io/local-config` dropped.
//!
//! Secret values (from SOPS files) are sealed while the build runs: each is swapped for an opaque
//! placeholder, so no transformer, error message or patch ever sees a plaintext, and the values
//! are put back (and their new JSON pointers recorded for masking) when the build ends. Where a
//! name hash needs the plaintext, it is computed over a copy with the values put back.

mod build;
mod charts;
pub mod fieldspec;
pub mod file;
mod generate;
mod nameref;
mod patch;
mod plugin;
mod replace;
pub mod resource;
pub mod selector;
mod transform;
mod vars;
mod vault;

pub(super) use build::build;

/// Whether a directory of the snapshot is a kustomization (holds one of kustomize's file names).
pub fn kustomization_file(snapshot: &crate::repo::Snapshot, dir: &str) -> crate::error::Result<Option<String>> {
    for name in file::FILE_NAMES {
        let path = if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
        if snapshot.entry_kind(&path)? == Some(crate::repo::EntryKind::File) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}
