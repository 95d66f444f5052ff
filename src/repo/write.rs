//! The one write cairn makes to a repository: a commit of edited files on a new branch (a
//! promotion), through gix, without touching the work tree, the index or the current branch.

use super::{Repo, git_error};
use crate::error::{Error, Result};

/// A file's new content, by its path relative to the configuration root.
pub struct Edit {
    pub path: String,
    pub content: Vec<u8>,
}

impl Repo {
    /// Commits `edits` on top of `base` as branch `refs/heads/{branch}`, which must not exist
    /// yet; returns the new commit's id. Author and committer come from git's configuration
    /// (`user.name`, `user.email`, and the `GIT_AUTHOR_*`/`GIT_COMMITTER_*` variables), else
    /// `fallback` (the actor) with `cairn@localhost`.
    pub fn commit_on_branch(
        &self,
        base: &str,
        branch: &str,
        edits: &[Edit],
        message: &str,
        fallback: &str,
    ) -> Result<String> {
        let parent = self.resolve(base)?;
        let full = format!("refs/heads/{branch}");
        if self.repo.try_find_reference(full.as_str()).map_err(git_error)?.is_some() {
            return Err(Error::Usage {
                message: format!("branch `{branch}` already exists; delete it, or choose another with --branch"),
            });
        }
        let tree = parent.tree().map_err(git_error)?;
        let mut editor = self.repo.edit_tree(tree.id).map_err(git_error)?;
        for edit in edits {
            let path =
                if self.prefix.is_empty() { edit.path.clone() } else { format!("{}/{}", self.prefix, edit.path) };
            let blob = self.repo.write_blob(&edit.content).map_err(git_error)?;
            // Keep an executable file executable.
            let kind = match tree.lookup_entry_by_path(&path).map_err(git_error)? {
                Some(entry) if entry.mode().is_executable() => gix::object::tree::EntryKind::BlobExecutable,
                _ => gix::object::tree::EntryKind::Blob,
            };
            editor.upsert(path.as_str(), kind, blob.detach()).map_err(git_error)?;
        }
        let new_tree = editor.write().map_err(git_error)?;
        let now = gix::date::Time::now_local_or_utc();
        let fallback_signature =
            || gix::actor::Signature { name: fallback.into(), email: "cairn@localhost".into(), time: now };
        let committer = match self.repo.committer() {
            Some(Ok(s)) => s.to_owned().unwrap_or_else(|_| fallback_signature()),
            _ => fallback_signature(),
        };
        let author = match self.repo.author() {
            Some(Ok(s)) => s.to_owned().unwrap_or_else(|_| fallback_signature()),
            _ => fallback_signature(),
        };
        let (mut a, mut c) = (Default::default(), Default::default());
        let id = self
            .repo
            .commit_as(
                committer.to_ref(&mut c),
                author.to_ref(&mut a),
                full.as_str(),
                message,
                new_tree.detach(),
                [parent.id],
            )
            .map_err(git_error)?;
        Ok(id.detach().to_hex().to_string())
    }
}
