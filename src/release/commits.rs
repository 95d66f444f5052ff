//! Commits grouped for people: conventional-commit types (`feat:`, `fix(api)!:`, …) become
//! sections; anything else goes under "Other".

use serde::Serialize;

use crate::repo::CommitInfo;

/// Sections in the order notes show them: (type, title).
const SECTIONS: &[(&str, &str)] = &[
    ("feat", "Features"),
    ("fix", "Bug fixes"),
    ("perf", "Performance"),
    ("revert", "Reverts"),
    ("refactor", "Refactoring"),
    ("docs", "Documentation"),
    ("build", "Build"),
    ("ci", "Continuous integration"),
    ("test", "Tests"),
    ("style", "Style"),
    ("chore", "Chores"),
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NoteCommit {
    pub sha: String,
    pub short: String,
    /// The conventional type (`feat`), or absent for other commits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The subject without the `type(scope):` prefix.
    pub description: String,
    pub breaking: bool,
    pub author: String,
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CommitGroup {
    pub title: String,
    pub commits: Vec<NoteCommit>,
}

/// Parses `type(scope)!: description`.
pub fn parse_conventional(subject: &str) -> Option<(String, Option<String>, bool, String)> {
    let (head, description) = subject.split_once(": ")?;
    let (head, breaking) = match head.strip_suffix('!') {
        Some(h) => (h, true),
        None => (head, false),
    };
    let (kind, scope) = match head.split_once('(') {
        Some((kind, rest)) => (kind, Some(rest.strip_suffix(')')?.to_string())),
        None => (head, None),
    };
    let valid = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    valid.then(|| (kind.to_ascii_lowercase(), scope, breaking, description.trim().to_string()))
}

/// Groups commits (newest first within each group) into sections, known types first.
pub fn group(commits: &[CommitInfo], repo_url: Option<&str>) -> Vec<CommitGroup> {
    let mut groups: Vec<CommitGroup> = Vec::new();
    let mut add = |title: &str, commit: NoteCommit| match groups.iter_mut().find(|g| g.title == title) {
        Some(g) => g.commits.push(commit),
        None => groups.push(CommitGroup { title: title.to_string(), commits: vec![commit] }),
    };
    for c in commits {
        let parsed = parse_conventional(&c.subject);
        let breaking_footer = c.body.contains("BREAKING CHANGE:")
            || c.body.contains("BREAKING-CHANGE:")
            || c.trailers.iter().any(|t| t.key == "BREAKING CHANGE" || t.key == "BREAKING-CHANGE");
        let (kind, scope, breaking, description) = match parsed {
            Some((k, s, b, d)) => (Some(k), s, b || breaking_footer, d),
            None => (None, None, breaking_footer, c.subject.clone()),
        };
        let title = kind
            .as_deref()
            .and_then(|k| SECTIONS.iter().find(|(t, _)| *t == k).map(|(_, title)| *title))
            .unwrap_or("Other");
        let url = repo_url.map(|u| format!("{}/commit/{}", u.trim_end_matches('/'), c.sha));
        add(
            title,
            NoteCommit {
                sha: c.sha.clone(),
                short: c.short_sha().chars().take(8).collect(),
                kind,
                scope,
                description,
                breaking,
                author: c.author.name.clone(),
                time: c.author.time.clone(),
                url,
            },
        );
    }
    let order = |title: &str| SECTIONS.iter().position(|(_, t)| *t == title).unwrap_or(SECTIONS.len());
    groups.sort_by_key(|g| order(&g.title));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventional_subjects_parse() {
        assert_eq!(
            parse_conventional("feat(api)!: drop v1"),
            Some(("feat".into(), Some("api".into()), true, "drop v1".into()))
        );
        assert_eq!(parse_conventional("fix: a bug"), Some(("fix".into(), None, false, "a bug".into())));
        assert_eq!(parse_conventional("Merge branch 'x'"), None);
        assert_eq!(parse_conventional("not conventional: has spaces in type"), None);
    }
}
