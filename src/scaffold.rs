//! `cairn init DIR`: a small working configuration repository (the one in `examples/shop`),
//! git-initialised with a first commit, so a new user has something real to plan and apply.

use std::path::Path;

use crate::error::{Error, Result};

/// The files of the scaffold, taken from `examples/shop` so the example and the scaffold never
/// drift apart.
pub const FILES: &[(&str, &str)] = &[
    ("cairn.yaml", include_str!("../examples/shop/cairn.yaml")),
    (".gitignore", include_str!("../examples/shop/.gitignore")),
    ("CODEOWNERS", include_str!("../examples/shop/CODEOWNERS")),
    ("base/namespace.yaml", include_str!("../examples/shop/base/namespace.yaml")),
    ("base/app-settings.yaml", include_str!("../examples/shop/base/app-settings.yaml")),
    ("base/features.yaml", include_str!("../examples/shop/base/features.yaml")),
    ("base/settings.yaml", include_str!("../examples/shop/base/settings.yaml")),
    ("base/web.yaml", include_str!("../examples/shop/base/web.yaml")),
    ("environments/staging/web.yaml", include_str!("../examples/shop/environments/staging/web.yaml")),
    ("environments/production/web.yaml", include_str!("../examples/shop/environments/production/web.yaml")),
    ("schemas/app-settings.json", include_str!("../examples/shop/schemas/app-settings.json")),
    ("policies/baseline-compliance.yaml", include_str!("../examples/shop/policies/baseline-compliance.yaml")),
    ("policies/production-approvals.yaml", include_str!("../examples/shop/policies/production-approvals.yaml")),
];

/// The files of the kustomize layout, from `examples/kustomize-shop`.
pub const KUSTOMIZE_FILES: &[(&str, &str)] = &[
    ("cairn.yaml", include_str!("../examples/kustomize-shop/cairn.yaml")),
    (".gitignore", include_str!("../examples/kustomize-shop/.gitignore")),
    ("CODEOWNERS", include_str!("../examples/kustomize-shop/CODEOWNERS")),
    ("deploy/base/kustomization.yaml", include_str!("../examples/kustomize-shop/deploy/base/kustomization.yaml")),
    ("deploy/base/namespace.yaml", include_str!("../examples/kustomize-shop/deploy/base/namespace.yaml")),
    ("deploy/base/app-settings.yaml", include_str!("../examples/kustomize-shop/deploy/base/app-settings.yaml")),
    ("deploy/base/features.yaml", include_str!("../examples/kustomize-shop/deploy/base/features.yaml")),
    ("deploy/base/web.yaml", include_str!("../examples/kustomize-shop/deploy/base/web.yaml")),
    (
        "deploy/overlays/staging/kustomization.yaml",
        include_str!("../examples/kustomize-shop/deploy/overlays/staging/kustomization.yaml"),
    ),
    (
        "deploy/overlays/production/kustomization.yaml",
        include_str!("../examples/kustomize-shop/deploy/overlays/production/kustomization.yaml"),
    ),
    ("schemas/app-settings.json", include_str!("../examples/kustomize-shop/schemas/app-settings.json")),
    ("policies/baseline-compliance.yaml", include_str!("../examples/kustomize-shop/policies/baseline-compliance.yaml")),
    (
        "policies/production-approvals.yaml",
        include_str!("../examples/kustomize-shop/policies/production-approvals.yaml"),
    ),
];

/// How the scaffold's environments are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// A base directory and a directory per environment, merged as layers.
    Plain,
    /// A kustomize base and an overlay per environment.
    Kustomize,
}

/// What `init` did.
#[derive(Debug, serde::Serialize)]
pub struct Scaffolded {
    pub path: String,
    pub files: Vec<String>,
    pub commit: String,
}

/// Writes the scaffold into `dir` (which must be absent or empty), initialises a git repository
/// there and commits the files as `author` ("Name <email>").
pub fn init(dir: &Path, layout: Layout, author: (&str, &str)) -> Result<Scaffolded> {
    let files = match layout {
        Layout::Plain => FILES,
        Layout::Kustomize => KUSTOMIZE_FILES,
    };
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(Error::Usage {
            message: format!("{}: directory is not empty; choose a new directory for the scaffold", dir.display()),
        });
    }
    if dir.is_file() {
        return Err(Error::Usage { message: format!("{}: is a file; choose a new directory", dir.display()) });
    }
    for (path, text) in files {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "cannot create directory", e))?;
        }
        std::fs::write(&full, text).map_err(|e| Error::io(&full, "cannot write", e))?;
    }
    let commit = commit_all(dir, files, author)?;
    Ok(Scaffolded {
        path: dir.display().to_string(),
        files: files.iter().map(|(p, _)| (*p).to_string()).collect(),
        commit,
    })
}

fn commit_all(dir: &Path, files: &[(&str, &str)], (name, email): (&str, &str)) -> Result<String> {
    let repo = gix::init(dir).map_err(|e| git_at(dir, e))?;
    let mut editor = repo.edit_tree(repo.empty_tree().id).map_err(|e| git_at(dir, e))?;
    for (path, text) in files {
        let blob = repo.write_blob(text.as_bytes()).map_err(|e| git_at(dir, e))?;
        editor.upsert(*path, gix::object::tree::EntryKind::Blob, blob.detach()).map_err(|e| git_at(dir, e))?;
    }
    let tree = editor.write().map_err(|e| git_at(dir, e))?.detach();
    let now = gix::date::Time::now_local_or_utc();
    let signature = gix::actor::Signature { name: name.into(), email: email.into(), time: now };
    let mut buf = gix::date::parse::TimeBuf::default();
    let sig = signature.to_ref(&mut buf);
    let id = repo
        .commit_as(
            sig,
            sig,
            "HEAD",
            "chore: scaffold a cairn configuration repository",
            tree,
            Vec::<gix::ObjectId>::new(),
        )
        .map_err(|e| git_at(dir, e))?;
    // Without an index git would show every committed file as deleted and untracked.
    let mut index = repo.index_from_tree(&tree).map_err(|e| git_at(dir, e))?;
    index.write(Default::default()).map_err(|e| git_at(dir, e))?;
    Ok(id.to_string())
}

/// A git step of the scaffold failed; the cause says what git said.
fn git_at<E: std::error::Error + Send + Sync + 'static>(dir: &Path, e: E) -> Error {
    Error::Scaffold { dir: dir.to_path_buf(), source: Box::new(e) }
}
