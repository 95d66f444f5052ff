//! Reading the configuration repository with gix: a revision's files straight from the object
//! database (no checkout), or the working tree so a developer sees uncommitted edits; the paths
//! changed between two revisions; commit metadata and trailers.

use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An opened repository. `prefix` is where the configuration root (`--repo DIR`) sits inside the
/// git work tree, so a `cairn.yaml` in a monorepo subdirectory works; every path cairn reports is
/// relative to that root.
pub struct Repo {
    repo: gix::Repository,
    root: PathBuf,
    prefix: String,
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

/// The files of the configuration root at one point: read-only access by relative path.
pub struct Snapshot {
    files: Files,
    pub source: SourceInfo,
}

enum Files {
    WorkTree { root: PathBuf },
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
        let repo = gix::discover(&root).map_err(|_| Error::NotARepository { path: dir.to_path_buf() })?;
        let workdir = repo
            .workdir()
            .ok_or_else(|| Error::NotARepository { path: dir.to_path_buf() })?
            .canonicalize()
            .map_err(|e| Error::io(dir, "cannot open the work tree", e))?;
        let prefix = root.strip_prefix(&workdir).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
        Ok(Repo { repo, root, prefix })
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
                    files: Files::WorkTree { root: self.root.clone() },
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
        let patterns: Vec<gix::bstr::BString> =
            if self.prefix.is_empty() { Vec::new() } else { vec![format!("{}/", self.prefix).into()] };
        let status = self
            .repo
            .status(gix::progress::Discard)
            .map(|s| s.untracked_files(gix::status::UntrackedFiles::Files))
            .and_then(|s| s.into_iter(patterns));
        match status {
            Ok(mut items) => items.next().is_some(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot compute the work tree status");
                true
            }
        }
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
            let location = change.location().to_str_lossy().into_owned();
            let relative = if self.prefix.is_empty() {
                Some(location)
            } else {
                location.strip_prefix(&format!("{}/", self.prefix)).map(str::to_string)
            };
            paths.extend(relative);
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
    /// The contents of the file at `path`, or `None` when there is no such file.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match &self.files {
            Files::WorkTree { root } => {
                let full = root.join(path);
                match std::fs::read(&full) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory) => {
                        Ok(None)
                    }
                    Err(e) => Err(Error::io(path, "cannot read", e)),
                }
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

    /// Whether `path` is a file, a directory, or absent.
    pub fn entry_kind(&self, path: &str) -> Result<Option<EntryKind>> {
        match &self.files {
            Files::WorkTree { root } => Ok(std::fs::metadata(root.join(path))
                .ok()
                .map(|m| if m.is_dir() { EntryKind::Dir } else { EntryKind::File })),
            Files::Revision { repo, tree } => Ok(lookup(repo, *tree, path)?
                .map(|(mode, _)| if mode.is_tree() { EntryKind::Dir } else { EntryKind::File })),
        }
    }

    /// Every file under the directory `dir`, recursively, as sorted relative paths. `.git`
    /// directories are skipped.
    pub fn files_under(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self.entries_under(dir)?.into_iter().map(|(path, _)| path).collect())
    }

    /// The files under `dir` whose paths pass `keep`, with their contents, in path order. At a
    /// revision the blobs are read by the ids the tree walk found, without a lookup per path.
    pub fn read_under(&self, dir: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for (path, blob) in self.entries_under(dir)? {
            if !keep(&path) {
                continue;
            }
            let bytes = match (&self.files, blob) {
                (Files::Revision { repo, .. }, Some(id)) => repo.find_blob(id).map_err(git_error)?.take_data(),
                _ => self.read(&path)?.unwrap_or_default(),
            };
            out.push((path, bytes));
        }
        Ok(out)
    }

    /// Paths under `dir`, sorted, with their blob ids when read from a revision.
    fn entries_under(&self, dir: &str) -> Result<Vec<(String, Option<gix::ObjectId>)>> {
        let mut out = Vec::new();
        match &self.files {
            Files::WorkTree { root } => {
                let mut paths = Vec::new();
                walk_dir(root, dir, &mut paths)?;
                out.extend(paths.into_iter().map(|p| (p, None)));
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
                    if entry.mode.is_blob() || entry.mode.is_link() {
                        out.push((join(dir, &entry.filepath.to_str_lossy()), Some(entry.oid)));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() || dir == "." { name.to_string() } else { format!("{dir}/{name}") }
}

fn walk_dir(root: &Path, dir: &str, out: &mut Vec<String>) -> Result<()> {
    let full = root.join(dir);
    let entries = match std::fs::read_dir(&full) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, "cannot list", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "cannot list", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".git" {
            continue;
        }
        let path = join(dir, &name);
        // Follow symlinks, as a checkout would present them.
        let meta = std::fs::metadata(entry.path()).map_err(|e| Error::io(&path, "cannot read", e))?;
        if meta.is_dir() {
            walk_dir(root, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

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
    let mut tree = repo.find_tree(tree).map_err(git_error)?;
    let entry = tree.peel_to_entry_by_path(path).map_err(git_error)?;
    Ok(entry.map(|e| (e.mode(), e.object_id())))
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

fn git_error(e: impl std::fmt::Display) -> Error {
    Error::Git { message: first_line(&e.to_string()) }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
