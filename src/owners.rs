//! CODEOWNERS: who owns a path. The last matching rule wins, as on GitHub and GitLab; patterns
//! follow gitignore rules: a leading `/` anchors to the root, a trailing `/` matches a directory
//! and everything under it, `*` stays within a path segment, `**` crosses segments, and a pattern
//! without a `/` matches a name at any depth.

use crate::error::Result;
use crate::repo::Snapshot;

/// The places a CODEOWNERS file is looked for, first found wins.
pub const LOCATIONS: &[&str] = &["CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS"];

#[derive(Debug, Clone, Default)]
pub struct CodeOwners {
    rules: Vec<(String, Vec<String>)>,
    /// The file the rules came from (none: no CODEOWNERS file).
    file: Option<&'static str>,
}

impl CodeOwners {
    /// Reads the first CODEOWNERS file of the snapshot (none is an empty set of rules).
    pub fn load(snapshot: &Snapshot) -> Result<CodeOwners> {
        for location in LOCATIONS {
            if let Some(bytes) = snapshot.read(location)? {
                return Ok(CodeOwners { file: Some(location), ..CodeOwners::parse(&String::from_utf8_lossy(&bytes)) });
            }
        }
        Ok(CodeOwners::default())
    }

    pub fn parse(text: &str) -> CodeOwners {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let pattern = parts.next()?.to_string();
                let owners = parts.take_while(|p| !p.starts_with('#')).map(str::to_string).collect();
                Some((pattern, owners))
            })
            .collect();
        CodeOwners { rules, file: None }
    }

    /// The CODEOWNERS file read, when there was one.
    pub fn file(&self) -> Option<&'static str> {
        self.file
    }

    /// The rules in file order: (pattern, owners).
    pub fn rules(&self) -> &[(String, Vec<String>)] {
        &self.rules
    }

    /// The owners of a path (relative to the repository root); empty when no rule matches.
    pub fn owners_of(&self, path: &str) -> &[String] {
        self.rules.iter().rev().find(|(pattern, _)| matches(pattern, path)).map_or(&[], |(_, owners)| owners)
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let anchored = pattern.starts_with('/') || pattern.trim_end_matches('/').contains('/');
    let directory = pattern.ends_with('/');
    let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
    if pattern.is_empty() {
        return false;
    }
    let pat: Vec<&str> = pattern.split('/').collect();
    let segments: Vec<&str> = path.split('/').collect();
    if anchored {
        prefix_match(&pat, &segments, directory)
    } else {
        // A bare name matches at any depth, as a file or as a directory above the path.
        (0..segments.len()).any(|start| prefix_match(&pat, &segments[start..], directory))
    }
}

/// Whether the pattern segments match the whole path, or (for directories) a leading part of it.
fn prefix_match(pat: &[&str], path: &[&str], directory: bool) -> bool {
    match pat.split_first() {
        None => !path.is_empty() || !directory,
        Some((&"**", rest)) => (0..=path.len()).any(|i| prefix_match(rest, &path[i..], directory)),
        Some((first, rest)) => match path.split_first() {
            None => false,
            Some((segment, tail)) => {
                glob(first, segment)
                    && (if rest.is_empty() {
                        !tail.is_empty() || !directory
                    } else {
                        prefix_match(rest, tail, directory)
                    })
            }
        },
    }
}

/// `*` and `?` within one segment.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_matching_rule_wins_with_gitignore_patterns() {
        let owners = CodeOwners::parse(
            "# comment\n* @everyone\n/base/ @platform\n*.json @schemas\nenvironments/production/ @sre @platform\ndocs/** @writers\n",
        );
        assert_eq!(owners.owners_of("README.md"), ["@everyone"]);
        assert_eq!(owners.owners_of("base/web.yaml"), ["@platform"]);
        assert_eq!(owners.owners_of("base/schema.json"), ["@schemas"]);
        assert_eq!(owners.owners_of("environments/production/web.yaml"), ["@sre", "@platform"]);
        assert_eq!(owners.owners_of("environments/staging/web.yaml"), ["@everyone"]);
        assert_eq!(owners.owners_of("docs/a/b.md"), ["@writers"]);
        assert!(CodeOwners::parse("/base/ @p\n").owners_of("other/base/x").is_empty(), "anchored");
        assert_eq!(CodeOwners::parse("base/ @p\n").owners_of("base/x.yaml"), ["@p"]);
    }
}
