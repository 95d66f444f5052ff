//! Approvals of a change: GitHub pull-request reviews from `--approvals FILE`, and
//! `Approved-by:` trailers in the change's commits.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::CommitInfo;

/// One approval of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The commit the review approved, when the review says (GitHub's `commit_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
    /// Where cairn learned of it: `review` (an approvals file) or `trailer` (`Approved-by:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Reads an approvals file: the JSON that GitHub's "list reviews for a pull request" API returns
/// (`[{"user": {"login": …}, "state": "APPROVED", "submitted_at": …}, …]`; a reviewer's latest
/// approving or change-requesting review counts), or `[{"by": …, "at": …}]`, or `["login", …]`.
pub fn read_approvals(path: &std::path::Path) -> Result<Vec<Approval>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read the approvals file", e))?;
    let shape = |found: &str| Error::Usage {
        message: format!(
            "{}: approvals must be a JSON list of GitHub reviews ({{\"user\": {{\"login\": …}}, \"state\": …}}), of {{\"by\": …}} objects, or of logins; found {found}",
            path.display()
        ),
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| shape(&format!("invalid JSON ({e})")))?;
    let items = value.as_array().ok_or_else(|| shape("something that is not a list"))?;
    let mut latest: Vec<(String, bool, Option<String>, Option<String>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (by, approved, at, commit) = match item {
            serde_json::Value::String(login) => (login.clone(), true, None, None),
            serde_json::Value::Object(map) => {
                let at = map.get("submitted_at").or_else(|| map.get("at")).and_then(|v| v.as_str()).map(str::to_string);
                let commit = map.get("commit_id").and_then(|v| v.as_str()).map(str::to_string);
                if let Some(login) = map.get("user").and_then(|u| u.get("login")).and_then(|l| l.as_str()) {
                    let state = map
                        .get("state")
                        .and_then(|s| s.as_str())
                        .ok_or_else(|| shape(&format!("review {i} without `state`")))?;
                    match state {
                        "APPROVED" => (login.to_string(), true, at, commit),
                        "CHANGES_REQUESTED" | "DISMISSED" => (login.to_string(), false, at, commit),
                        _ => continue, // comments neither grant nor revoke
                    }
                } else if let Some(by) = map.get("by").and_then(|b| b.as_str()) {
                    (by.to_string(), true, at, commit)
                } else {
                    return Err(shape(&format!("item {i} with neither `user.login` nor `by`")));
                }
            }
            _ => return Err(shape(&format!("item {i} that is neither an object nor a login"))),
        };
        latest.retain(|(who, _, _, _)| *who != by);
        latest.push((by, approved, at, commit));
    }
    Ok(latest
        .into_iter()
        .filter(|(_, approved, _, _)| *approved)
        .map(|(by, _, at, commit_id)| Approval { by, at, commit_id, source: Some("review".into()) })
        .collect())
}

/// Adds approvals from another source; a reviewer already counted is not counted twice (the
/// earlier source, the reviews file, wins).
pub fn add_approvals(approvals: &mut Vec<Approval>, more: Vec<Approval>) {
    for approval in more {
        if !approvals.iter().any(|a| a.by == approval.by) {
            approvals.push(approval);
        }
    }
}

/// Approvals recorded in commit messages as `Approved-by: login` (or `Name <email>`) trailers.
pub fn trailer_approvals(commits: &[CommitInfo]) -> Vec<Approval> {
    let mut out: Vec<Approval> = Vec::new();
    for commit in commits {
        for value in commit.trailer_values("Approved-by") {
            if !out.iter().any(|a| a.by == value) {
                out.push(Approval {
                    by: value.to_string(),
                    at: None,
                    commit_id: Some(commit.sha.clone()),
                    source: Some("trailer".into()),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Approval>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("approvals.json");
        std::fs::write(&path, text).expect("write");
        read_approvals(&path)
    }

    #[test]
    fn github_reviews_latest_state_wins() {
        let list = read(
            r#"[{"user": {"login": "ann"}, "state": "APPROVED", "submitted_at": "2026-01-01T00:00:00Z"},
                {"user": {"login": "bob"}, "state": "APPROVED"},
                {"user": {"login": "bob"}, "state": "CHANGES_REQUESTED"},
                {"user": {"login": "cy"}, "state": "COMMENTED"}]"#,
        )
        .expect("reads");
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].by.as_str(), list[0].at.as_deref()), ("ann", Some("2026-01-01T00:00:00Z")));
        assert_eq!(read(r#"["ann", {"by": "bob"}]"#).expect("reads").len(), 2);
    }

    #[test]
    fn wrong_shapes_are_explained() {
        for (text, needle) in [
            ("{}", "not a list"),
            ("[1]", "item 0"),
            ("[{\"x\": 1}]", "neither `user.login` nor `by`"),
            ("[", "invalid JSON"),
        ] {
            let err = read(text).expect_err("refused").to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
