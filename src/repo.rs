//! Reading the configuration repository with gix: a revision's files straight from the object
//! database (no checkout), or the working tree so a developer sees uncommitted edits; the paths
//! changed between two revisions; commit metadata and trailers.

use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod write;
pub use write::Edit;

/// An opened repository. `prefix` is where the configuration root (`--repo DIR`) sits inside the
/// git work tree, so a `cairn.yaml` in a monorepo subdirectory works; every path cairn reports is
/// relative to that root.
pub struct Repo {
    repo: gix::Repository,
    root: PathBuf,
    prefix: String,
    boundary: Boundary,
}

/// What a work-tree read may reach: files of the git work tree, outside git's own directories.
/// The work tree rather than the configuration root is the boundary, so in a monorepo
/// (`--repo monorepo/deploy`) a link to `../shared/base.yaml` is followed like any file of the
/// checkout; a link to the runner's other files (`/etc/passwd`, `~/.ssh`) or into `.git` (where CI
/// may keep a token) is refused before anything behind it is read.
#[derive(Debug, Clone)]
struct Boundary {
    /// Canonical, so a resolved path can be compared by prefix.
    work_tree: PathBuf,
    /// Canonical git directory and common directory (they differ in a linked worktree, and either
    /// may lie outside the work tree).
    git_dirs: Vec<PathBuf>,
}

/// Who and when, as recorded in a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub name: String,
    pub email: String,
    /// RFC 3339 with the committer's own offset.
    pub time: String,
}

/// A `Key: value` line of a commit message's trailer block (`Approved-by: …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: String,
    pub author: Signature,
    pub committer: Signature,
    pub subject: String,
    /// The message body without the subject and without the trailer block.
    pub body: String,
    pub trailers: Vec<Trailer>,
}

impl CommitInfo {
    pub fn short_sha(&self) -> &str {
        &self.sha[..self.sha.len().min(12)]
    }

    /// Values of every trailer named `key` (case-insensitive, as git compares trailer keys).
    pub fn trailer_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.trailers.iter().filter(move |t| t.key.eq_ignore_ascii_case(key)).map(|t| t.value.as_str())
    }
}

/// What a run reads: the working tree, or one commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceInfo {
    /// The working tree; `head` is the commit it sits on (absent in a repository without
    /// commits) and `dirty` says whether tracked or untracked files differ from it.
    WorkTree {
        head: Option<CommitInfo>,
        dirty: bool,
    },
    Revision {
        rev: String,
        commit: CommitInfo,
    },
}

impl SourceInfo {
    pub fn commit(&self) -> Option<&CommitInfo> {
        match self {
            SourceInfo::WorkTree { head, .. } => head.as_ref(),
            SourceInfo::Revision { commit, .. } => Some(commit),
        }
    }

    /// A short human label: `abc123def456`, `abc123def456+dirty`, or `working tree`.
    pub fn label(&self) -> String {
        match self {
            SourceInfo::WorkTree { head: Some(c), dirty: true } => format!("{}+dirty", c.short_sha()),
            SourceInfo::WorkTree { head: Some(c), dirty: false } => c.short_sha().to_string(),
            SourceInfo::WorkTree { head: None, .. } => "working tree (no commits)".to_string(),
            SourceInfo::Revision { commit, .. } => commit.short_sha().to_string(),
        }
    }
}

/// The most memory decoded git objects are cached in (most recently used kept).
const OBJECT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The files of the configuration root at one point: read-only access by relative path.
pub struct Snapshot {
    files: Files,
    pub source: SourceInfo,
}

enum Files {
    WorkTree { root: PathBuf, boundary: Boundary },
    Revision { repo: Box<gix::Repository>, tree: gix::ObjectId },
}

/// Whether a path names a file or a directory in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// Paths changed between two revisions, relative to the configuration root.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangeSet {
    pub base: String,
    pub head: String,
    pub paths: Vec<String>,
}

impl Repo {
    /// Opens the repository containing `dir` (searching upwards, as git does).
    pub fn open(dir: &Path) -> Result<Repo> {
        let root = dir.canonicalize().map_err(|e| Error::io(dir, "cannot open the repository directory", e))?;
        let mut repo = gix::discover(&root).map_err(|_| Error::NotARepository { path: dir.to_path_buf() })?;
        // Decoded objects are kept for reuse: every path looked up at a revision decodes the
        // trees above it again otherwise, and a directory of thousands of environments is one
        // large tree decoded once per environment (the square of their number in all).
        repo.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
        let workdir = repo
            .workdir()
            .ok_or_else(|| Error::NotARepository { path: dir.to_path_buf() })?
            .canonicalize()
            .map_err(|e| Error::io(dir, "cannot open the work tree", e))?;
        let prefix = root.strip_prefix(&workdir).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
        let git_dirs = [repo.git_dir(), repo.common_dir()].iter().filter_map(|d| d.canonicalize().ok()).collect();
        let boundary = Boundary { work_tree: workdir, git_dirs };
        Ok(Repo { repo, root, prefix, boundary })
    }

    /// The configuration root on disk.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, rev: &str) -> Result<gix::Commit<'_>> {
        let id = self.repo.rev_parse_single(rev).map_err(|e| {
            if self.repo.head_id().is_err() {
                Error::NoCommits { path: self.root.clone() }
            } else {
                tracing::debug!(rev, error = %e, "revision did not resolve");
                Error::UnknownRevision {
                    rev: rev.to_string(),
                    reason: "no branch, tag or commit matches it (try a sha, a tag, `main` or `HEAD~1`)".to_string(),
                }
            }
        })?;
        let object = id.object().map_err(git_error)?;
        object.peel_to_commit().map_err(|e| Error::UnknownRevision {
            rev: rev.to_string(),
            reason: format!("does not name a commit ({})", first_line(&e.to_string())),
        })
    }

    /// Metadata of the commit `rev` names.
    pub fn commit_info(&self, rev: &str) -> Result<CommitInfo> {
        let commit = self.resolve(rev)?;
        commit_info(&commit)
    }

    /// The snapshot commands read: the working tree without `rev`, exactly that commit with it.
    pub fn snapshot(&self, rev: Option<&str>) -> Result<Snapshot> {
        match rev {
            None => {
                let head = match self.repo.head_commit() {
                    Ok(c) => Some(commit_info(&c)?),
                    Err(_) => None,
                };
                let dirty = head.is_some() && self.is_dirty();
                Ok(Snapshot {
                    files: Files::WorkTree { root: self.root.clone(), boundary: self.boundary.clone() },
                    source: SourceInfo::WorkTree { head, dirty },
                })
            }
            Some(rev) => {
                let commit = self.resolve(rev)?;
                let info = commit_info(&commit)?;
                let mut tree = commit.tree().map_err(git_error)?;
                let tree_id = if self.prefix.is_empty() {
                    tree.id
                } else {
                    match tree.peel_to_entry_by_path(&self.prefix).map_err(git_error)? {
                        Some(entry) if entry.mode().is_tree() => entry.object_id(),
                        _ => {
                            return Err(Error::UnknownRevision {
                                rev: rev.to_string(),
                                reason: format!("`{}` does not exist in that commit", self.prefix),
                            });
                        }
                    }
                };
                Ok(Snapshot {
                    files: Files::Revision { repo: Box::new(self.repo.clone()), tree: tree_id },
                    source: SourceInfo::Revision { rev: rev.to_string(), commit: info },
                })
            }
        }
    }

    /// Whether anything under the configuration root differs from HEAD: staged or unstaged edits,
    /// deletions, or untracked files that are not ignored (a new layer file changes what renders).
    /// When status cannot be computed the answer is "dirty", the safe side for a release record.
    fn is_dirty(&self) -> bool {
        self.dirty_paths().is_none_or(|paths| !paths.is_empty())
    }

    /// A path of the git work tree relative to the configuration root; `None` outside it.
    fn relative(&self, location: &str) -> Option<String> {
        if self.prefix.is_empty() {
            Some(location.to_string())
        } else {
            location.strip_prefix(&format!("{}/", self.prefix)).map(str::to_string)
        }
    }

    /// Paths under the configuration root (relative to it) that the work tree changes against
    /// HEAD: edits, deletions and untracked files that are not ignored. When status cannot be
    /// computed, `None`: the caller must then treat every path as changed.
    pub fn dirty_paths(&self) -> Option<Vec<String>> {
        let patterns: Vec<gix::bstr::BString> =
            if self.prefix.is_empty() { Vec::new() } else { vec![format!("{}/", self.prefix).into()] };
        let status = self
            .repo
            .status(gix::progress::Discard)
            .map(|s| s.untracked_files(gix::status::UntrackedFiles::Files))
            .and_then(|s| s.into_iter(patterns));
        let items = match status {
            Ok(items) => items,
            Err(e) => {
                tracing::debug!(error = %e, "cannot compute the work tree status");
                return None;
            }
        };
        let mut paths = Vec::new();
        for item in items {
            let item = item.ok()?;
            paths.extend(self.relative(&item.location().to_str_lossy()));
        }
        paths.sort();
        paths.dedup();
        Some(paths)
    }

    /// Paths (relative to the configuration root) that differ between `base` and `head`.
    pub fn changed_paths(&self, base: &str, head: &str) -> Result<ChangeSet> {
        let old = self.resolve(base)?;
        let new = self.resolve(head)?;
        let old_tree = old.tree().map_err(git_error)?;
        let new_tree = new.tree().map_err(git_error)?;
        let options = gix::diff::Options::default().with_rewrites(None);
        let changes = self.repo.diff_tree_to_tree(&old_tree, &new_tree, options).map_err(git_error)?;
        let mut paths = Vec::new();
        for change in changes {
            if change.entry_mode().is_tree() {
                continue;
            }
            paths.extend(self.relative(&change.location().to_str_lossy()));
        }
        paths.sort();
        paths.dedup();
        Ok(ChangeSet { base: old.id.to_string(), head: new.id.to_string(), paths })
    }

    /// Commits reachable from `to` but not from `from`, newest first. `from`, when given, must be
    /// an ancestor of `to` (a range a person asked for).
    pub fn commits_between(&self, from: Option<&str>, to: &str) -> Result<Vec<CommitInfo>> {
        if let Some(from) = from {
            self.ensure_ancestor(from, to)?;
        }
        self.commits_reachable(from, to)
    }

    /// Fails unless `from` is `to` or one of its ancestors.
    pub fn ensure_ancestor(&self, from: &str, to: &str) -> Result<()> {
        let (from_id, to_id) = (self.resolve(from)?.id, self.resolve(to)?.id);
        if self.is_ancestor(from_id, to_id)? {
            Ok(())
        } else {
            Err(Error::Usage {
                message: format!(
                    "`{from}` is not an ancestor of `{to}`; the earlier revision must be in the later one's history"
                ),
            })
        }
    }

    /// Commits reachable from `to` but not from `hidden`, newest first, whatever their relation.
    /// When the configuration root is a subdirectory, only commits that change something under
    /// it are listed (a monorepo's other commits are not this configuration's history).
    pub fn commits_reachable(&self, hidden: Option<&str>, to: &str) -> Result<Vec<CommitInfo>> {
        let to_id = self.resolve(to)?.id;
        let mut walk = self.repo.rev_walk([to_id]);
        if let Some(hidden) = hidden {
            walk = walk.with_hidden([self.resolve(hidden)?.id]);
        }
        let mut out = Vec::new();
        for info in walk.all().map_err(git_error)? {
            let info = info.map_err(git_error)?;
            let commit = info.object().map_err(git_error)?;
            if !self.prefix.is_empty() && !self.touches_prefix(&commit, info.parent_ids.first().copied())? {
                continue;
            }
            out.push(commit_info(&commit)?);
        }
        Ok(out)
    }

    /// Whether a commit changes the configuration root's subtree compared with its first parent.
    fn touches_prefix(&self, commit: &gix::Commit<'_>, parent: Option<gix::ObjectId>) -> Result<bool> {
        let subtree = |tree: gix::Tree<'_>| -> Result<Option<gix::ObjectId>> {
            let mut tree = tree;
            Ok(tree.peel_to_entry_by_path(&self.prefix).map_err(git_error)?.map(|e| e.object_id()))
        };
        let here = subtree(commit.tree().map_err(git_error)?)?;
        let before = match parent {
            Some(id) => subtree(self.repo.find_commit(id).map_err(git_error)?.tree().map_err(git_error)?)?,
            None => None,
        };
        Ok(here != before)
    }

    fn is_ancestor(&self, ancestor: gix::ObjectId, of: gix::ObjectId) -> Result<bool> {
        if ancestor == of {
            return Ok(true);
        }
        let base = self.repo.merge_base(ancestor, of).map_err(git_error)?;
        Ok(base.is_some_and(|b| b.detach() == ancestor))
    }

    /// The identity of the repository's history: the first (parentless) commit reachable from
    /// `rev`. Saved plans carry it so a plan is never applied to another repository.
    pub fn root_commit(&self, rev: &str) -> Result<String> {
        let id = self.resolve(rev)?.id;
        let mut root = id;
        for info in self.repo.rev_walk([id]).all().map_err(git_error)? {
            let info = info.map_err(git_error)?;
            if info.parent_ids.is_empty() {
                root = info.id;
            }
        }
        Ok(root.to_string())
    }

    /// Whether a commit id still names a commit here (history may have been rewritten since).
    pub fn has_commit(&self, sha: &str) -> bool {
        self.resolve(sha).is_ok()
    }

    /// `user.name <user.email>` from git configuration, if set.
    pub fn configured_user(&self) -> Option<String> {
        let config = self.repo.config_snapshot();
        let name = config.string("user.name")?.to_str_lossy().trim().to_string();
        if name.is_empty() {
            return None;
        }
        match config.string("user.email") {
            Some(email) if !email.is_empty() => Some(format!("{name} <{}>", email.to_str_lossy().trim())),
            _ => Some(name),
        }
    }
}

impl Snapshot {
    /// The contents of the file at `path`, or `None` when there is no such file. In the work tree
    /// a symbolic link is followed only while it stays inside the repository; at a revision a
    /// committed link is refused.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match &self.files {
            Files::WorkTree { root, boundary } => {
                let Some(real) = boundary.locate(root, path)? else {
                    return Ok(None);
                };
                read_file(path, &real)
            }
            Files::Revision { repo, tree } => {
                let Some(entry) = lookup(repo, *tree, path)? else {
                    return Ok(None);
                };
                if entry.0.is_tree() {
                    return Ok(None);
                }
                let blob = repo.find_blob(entry.1).map_err(git_error)?;
                Ok(Some(blob.data.clone()))
            }
        }
    }

    /// The configuration root on disk when the snapshot is the work tree; `None` at a revision
    /// (where nothing should be written back).
    pub fn work_tree_root(&self) -> Option<&Path> {
        match &self.files {
            Files::WorkTree { root, .. } => Some(root),
            Files::Revision { .. } => None,
        }
    }

    /// Whether `path` is a file, a directory, or absent.
    pub fn entry_kind(&self, path: &str) -> Result<Option<EntryKind>> {
        match &self.files {
            Files::WorkTree { root, boundary } => Ok(boundary
                .locate(root, path)?
                .and_then(|real| std::fs::metadata(real).ok())
                .map(|m| if m.is_dir() { EntryKind::Dir } else { EntryKind::File })),
            Files::Revision { repo, tree } => Ok(lookup(repo, *tree, path)?
                .map(|(mode, _)| if mode.is_tree() { EntryKind::Dir } else { EntryKind::File })),
        }
    }

    /// Every file under the directory `dir`, recursively, as sorted relative paths. `.git`
    /// directories are skipped; at a revision, committed symbolic links are listed too.
    pub fn files_under(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self.entries_under(dir)?.into_iter().map(|(path, _)| path).collect())
    }

    /// The files under `dir` whose paths pass `keep`, with their contents, in path order. At a
    /// revision the blobs are read by the ids the tree walk found, without a lookup per path, and
    /// any committed symbolic link is refused (it may name a directory whose files would be
    /// silently missed).
    pub fn read_under(&self, dir: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for (path, source) in self.entries_under(dir)? {
            if let (Files::Revision { repo, .. }, Source::Link(id)) = (&self.files, &source) {
                return Err(link_in_revision(repo, &path, *id));
            }
            if !keep(&path) {
                continue;
            }
            let bytes = match (&self.files, source) {
                (Files::Revision { repo, .. }, Source::Blob(id)) => repo.find_blob(id).map_err(git_error)?.take_data(),
                (_, Source::Disk(real)) => read_file(&path, &real)?.unwrap_or_default(),
                _ => self.read(&path)?.unwrap_or_default(),
            };
            out.push((path, bytes));
        }
        Ok(out)
    }

    /// `summarise` applied to every file under `dir` whose path passes `keep`, in path order:
    /// files are read (blobs inflated) in parallel and each is dropped as soon as it is
    /// summarised, for callers that need a figure per file rather than its contents (the CI
    /// matrix's document counts over thousands of layers). A committed symbolic link is refused
    /// as in [`Snapshot::read_under`].
    pub fn summarise_under<T: Send>(
        &self,
        dir: &str,
        keep: impl Fn(&str) -> bool,
        summarise: impl Fn(&[u8]) -> T + Sync,
    ) -> Result<Vec<(String, T)>> {
        use rayon::prelude::*;
        let mut entries = Vec::new();
        for (path, source) in self.entries_under(dir)? {
            if let (Files::Revision { repo, .. }, Source::Link(id)) = (&self.files, &source) {
                return Err(link_in_revision(repo, &path, id.to_owned()));
            }
            if keep(&path) {
                entries.push((path, source));
            }
        }
        match &self.files {
            Files::WorkTree { .. } => entries
                .into_par_iter()
                .map(|(path, source)| {
                    let bytes = match &source {
                        Source::Disk(real) => read_file(&path, real)?.unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    let figure = summarise(&bytes);
                    Ok((path, figure))
                })
                .collect(),
            Files::Revision { repo, .. } => {
                // A repository handle is one thread's: each worker opens its own, once, on the
                // same git directory, and inflates its share of the blobs.
                let git_dir = repo.git_dir().to_path_buf();
                let workers = rayon::current_num_threads().max(1);
                let chunk = entries.len().div_ceil(workers).max(1);
                let parts: Vec<Result<Vec<(String, T)>>> = entries
                    .par_chunks(chunk)
                    .map(|part| {
                        let mut own = gix::open(&git_dir).map_err(git_error)?;
                        own.object_cache_size_if_unset(OBJECT_CACHE_BYTES / workers);
                        part.iter()
                            .map(|(path, source)| {
                                let figure = match source {
                                    Source::Blob(id) => summarise(&own.find_blob(*id).map_err(git_error)?.data),
                                    _ => summarise(&[]),
                                };
                                Ok((path.clone(), figure))
                            })
                            .collect()
                    })
                    .collect();
                let mut out = Vec::new();
                for part in parts {
                    out.extend(part?);
                }
                Ok(out)
            }
        }
    }

    /// Paths under `dir`, sorted, with where their contents are.
    fn entries_under(&self, dir: &str) -> Result<Vec<(String, Source)>> {
        let mut out = Vec::new();
        match &self.files {
            Files::WorkTree { root, boundary } => {
                let Some(real) = boundary.locate(root, dir)? else {
                    return Ok(out);
                };
                if !real.is_dir() {
                    return Ok(out);
                }
                let mut files = Vec::new();
                boundary.walk(&real, dir.trim_matches('/'), &mut Vec::new(), &mut files)?;
                out.extend(files.into_iter().map(|(path, real)| (path, Source::Disk(real))));
            }
            Files::Revision { repo, tree } => {
                let Some((mode, id)) = lookup(repo, *tree, dir)? else {
                    return Ok(out);
                };
                if !mode.is_tree() {
                    return Ok(out);
                }
                let subtree = repo.find_tree(id).map_err(git_error)?;
                let mut recorder = gix::traverse::tree::Recorder::default();
                subtree.traverse().breadthfirst(&mut recorder).map_err(git_error)?;
                for entry in recorder.records {
                    let path = join(dir, &entry.filepath.to_str_lossy());
                    if entry.mode.is_link() {
                        out.push((path, Source::Link(entry.oid)));
                    } else if entry.mode.is_blob() {
                        out.push((path, Source::Blob(entry.oid)));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// Where a listed file's contents are: a real path on disk (already inside the boundary), or a
/// blob of the revision.
enum Source {
    Disk(PathBuf),
    Blob(gix::ObjectId),
    Link(gix::ObjectId),
}

fn read_file(path: &str, real: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(real) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory) => Ok(None),
        Err(e) => Err(Error::io(path, "cannot read", e)),
    }
}

/// A path that does not exist as asked (a missing entry, or a file where a directory should be).
fn is_absent(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

impl Boundary {
    /// The real path of the repository path `rel` under the configuration root `root` (itself
    /// canonical), resolving each component in turn so a link anywhere in the path is checked
    /// before anything behind it is touched. `None` when the path does not exist, is a dangling
    /// link, or goes through `.git` (no commit holds such a path either).
    fn locate(&self, root: &Path, rel: &str) -> Result<Option<PathBuf>> {
        let mut real = root.to_path_buf();
        let mut logical = String::new();
        for part in rel.split('/') {
            match part {
                "" | "." => continue,
                // Repository paths are normalised before they get here; one that climbs is not a
                // repository path at all.
                ".." | ".git" => return Ok(None),
                _ => {}
            }
            logical = join(&logical, part);
            let candidate = real.join(part);
            let meta = match std::fs::symlink_metadata(&candidate) {
                Ok(meta) => meta,
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(Error::io(&logical, "cannot read", e)),
            };
            // A component that is not a link keeps `real` canonical: its parent was.
            real = if meta.is_symlink() {
                match self.follow(&logical, &candidate)? {
                    Some(target) => target,
                    None => return Ok(None),
                }
            } else {
                candidate
            };
        }
        Ok(Some(real))
    }

    /// The real path a symbolic link resolves to, when the boundary admits it; `None` when the
    /// link dangles.
    fn follow(&self, link: &str, path: &Path) -> Result<Option<PathBuf>> {
        match std::fs::canonicalize(path) {
            Ok(real) => self.admit(link, real).map(Some),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Error::io(link, "cannot read", e)),
            // What is left is ELOOP: a cycle, or more links in a row than the system follows
            // (`ErrorKind::FilesystemLoop` is not stable yet, so the kind cannot be matched).
            Err(source) => Err(Error::SymlinkLoop {
                path: link.to_string(),
                points_to: std::fs::read_link(path).unwrap_or_default(),
                source,
            }),
        }
    }

    fn admit(&self, link: &str, real: PathBuf) -> Result<PathBuf> {
        let Ok(inside) = real.strip_prefix(&self.work_tree) else {
            return Err(Error::SymlinkOutside { path: link.to_string(), points_to: real });
        };
        // Any `.git` below the work tree too: a submodule's or a nested repository's.
        if self.git_dirs.iter().any(|dir| real.starts_with(dir)) || inside.components().any(|c| c.as_os_str() == ".git")
        {
            return Err(Error::SymlinkIntoGitDir { path: link.to_string(), points_to: real });
        }
        Ok(real)
    }

    /// Lists the files under the real directory `dir` (reported as `logical`), following links as
    /// a checkout presents them while the boundary admits them. `ancestors` are the real
    /// directories being walked, so a directory link back to one of them is a loop, not an
    /// endless walk.
    fn walk(
        &self,
        dir: &Path,
        logical: &str,
        ancestors: &mut Vec<PathBuf>,
        out: &mut Vec<(String, PathBuf)>,
    ) -> Result<()> {
        let shown = if logical.is_empty() { "." } else { logical };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(shown, "cannot list", e)),
        };
        let mut entries =
            entries.collect::<std::io::Result<Vec<_>>>().map_err(|e| Error::io(shown, "cannot list", e))?;
        // In name order, so the first refused link reported is the same on every machine.
        entries.sort_by_key(std::fs::DirEntry::file_name);
        ancestors.push(dir.to_path_buf());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            let path = join(logical, &name);
            let file_type = entry.file_type().map_err(|e| Error::io(&path, "cannot read", e))?;
            let (real, is_dir) = if file_type.is_symlink() {
                let Some(real) = self.follow(&path, &entry.path())? else {
                    let dangling =
                        std::io::Error::new(std::io::ErrorKind::NotFound, "the link's target does not exist");
                    return Err(Error::io(&path, "cannot read", dangling));
                };
                let is_dir = real.is_dir();
                if is_dir && ancestors.contains(&real) {
                    let source = std::io::Error::other("it leads back to a directory that contains it");
                    return Err(Error::SymlinkLoop { path, points_to: real, source });
                }
                (real, is_dir)
            } else {
                (entry.path(), file_type.is_dir())
            };
            if is_dir {
                self.walk(&real, &path, ancestors, out)?;
            } else {
                out.push((path, real));
            }
        }
        ancestors.pop();
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() || dir == "." { name.to_string() } else { format!("{dir}/{name}") }
}

/// A committed symbolic link met at a revision, named with where it points (a link's blob is its
/// target path).
fn link_in_revision(repo: &gix::Repository, path: &str, id: gix::ObjectId) -> Error {
    let points_to = repo.find_blob(id).map(|b| b.data.to_str_lossy().into_owned()).unwrap_or_default();
    Error::SymlinkInRevision { path: path.to_string(), points_to }
}

/// The tree entry at `path`. A committed symbolic link at `path`, or in place of one of its
/// directories, is refused rather than read as a document or taken for a missing file.
fn lookup(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    path: &str,
) -> Result<Option<(gix::object::tree::EntryMode, gix::ObjectId)>> {
    let path = path.trim_matches('/');
    if path.is_empty() || path == "." {
        let mode = gix::object::tree::EntryKind::Tree.into();
        return Ok(Some((mode, tree)));
    }
    let entry = match entry_at(repo, tree, path) {
        Ok(Some(entry)) => entry,
        found => {
            if let Some((link, id)) = link_above(repo, tree, path)? {
                return Err(link_in_revision(repo, &link, id));
            }
            return found;
        }
    };
    if entry.0.is_link() {
        return Err(link_in_revision(repo, path, entry.1));
    }
    Ok(Some(entry))
}

fn entry_at(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    path: &str,
) -> Result<Option<(gix::object::tree::EntryMode, gix::ObjectId)>> {
    let mut tree = repo.find_tree(tree).map_err(git_error)?;
    let entry = tree.peel_to_entry_by_path(path).map_err(git_error)?;
    Ok(entry.map(|e| (e.mode(), e.object_id())))
}

/// The first directory of `path` that is a committed symbolic link, if any. Only asked when
/// `path` itself was not found, so the common case costs nothing.
fn link_above(repo: &gix::Repository, tree: gix::ObjectId, path: &str) -> Result<Option<(String, gix::ObjectId)>> {
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        prefix = join(&prefix, part);
        match entry_at(repo, tree, &prefix)? {
            Some((mode, id)) if mode.is_link() => return Ok(Some((prefix, id))),
            Some((mode, _)) if mode.is_tree() => {}
            _ => return Ok(None),
        }
    }
    Ok(None)
}

fn commit_info(commit: &gix::Commit<'_>) -> Result<CommitInfo> {
    let author = signature(commit.author().map_err(git_error)?)?;
    let committer = signature(commit.committer().map_err(git_error)?)?;
    let message = commit.message().map_err(git_error)?;
    let subject = message.summary().to_str_lossy().trim().to_string();
    let (body, trailers) = match message.body {
        Some(body) => {
            let parsed = gix::objs::commit::message::BodyRef::from_bytes(body);
            let trailers = parsed
                .trailers()
                .map(|t| Trailer {
                    key: t.token.to_str_lossy().into_owned(),
                    value: t.value.to_str_lossy().into_owned(),
                })
                .collect();
            (parsed.without_trailer().to_str_lossy().trim().to_string(), trailers)
        }
        None => (String::new(), Vec::new()),
    };
    Ok(CommitInfo { sha: commit.id.to_string(), author, committer, subject, body, trailers })
}

fn signature(sig: gix::actor::SignatureRef<'_>) -> Result<Signature> {
    let time = sig.time().map_err(git_error)?;
    Ok(Signature {
        name: sig.name.to_str_lossy().trim().to_string(),
        email: sig.email.to_str_lossy().trim().to_string(),
        time: format_time(time.seconds, time.offset),
    })
}

/// RFC 3339 in the signature's own offset.
pub fn format_time(seconds: i64, offset: i32) -> String {
    let zoned = jiff::tz::Offset::from_seconds(offset)
        .ok()
        .and_then(|off| jiff::Timestamp::from_second(seconds).ok().map(|ts| ts.to_zoned(off.to_time_zone())));
    match zoned {
        Some(z) => z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => seconds.to_string(),
    }
}

fn git_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Git { source: Box::new(e) }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
