//! The approvals policy: every changed path needs an approval from one of its CODEOWNERS owners,
//! and each environment a minimum number of approvals. Approvals of an older commit do not count
//! unless `allow_stale_approvals` is set, and an author cannot approve their own change.
//!
//! Settings:
//! - `required_approvals`: a number, or a map environment → number (key `default` for the
//!   rest); default 1.
//! - `allow_stale_approvals`: count approvals given for an earlier commit; default false.
//! - `teams`: a map team (`org/team`, with or without `@`) → logins, to resolve team owners.

use std::collections::{BTreeMap, BTreeSet};

use cairn_policy_sdk::{Approval, Input, Output, Violation, setting};
use serde_json::Value;

fn main() {
    cairn_policy_sdk::run(evaluate)
}

struct Settings {
    required: u64,
    allow_stale: bool,
    teams: BTreeMap<String, Vec<String>>,
}

fn settings(input: &Input) -> Result<Settings, String> {
    let s = &input.settings;
    if !(s.is_null() || s.is_object()) {
        return Err("settings must be a mapping".into());
    }
    if let Some(map) = s.as_object() {
        for key in map.keys() {
            if !["required_approvals", "allow_stale_approvals", "teams"].contains(&key.as_str()) {
                return Err(format!(
                    "unknown setting `{key}` (valid: required_approvals, allow_stale_approvals, teams)"
                ));
            }
        }
    }
    let required = match s.get("required_approvals") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => {
            n.as_u64().ok_or("settings.required_approvals must be a whole number of at least 0")?
        }
        Some(Value::Object(map)) => {
            let pick = map.get(&input.environment).or_else(|| map.get("default"));
            match pick {
                None => 1,
                Some(v) => v.as_u64().ok_or_else(|| {
                    format!("settings.required_approvals.{}: must be a whole number", input.environment)
                })?,
            }
        }
        Some(_) => return Err("settings.required_approvals must be a number or a map environment → number".into()),
    };
    let teams: BTreeMap<String, Vec<String>> = setting(s, "/teams")?.unwrap_or_default();
    let teams = teams.into_iter().map(|(k, v)| (k.trim_start_matches('@').to_lowercase(), v)).collect();
    Ok(Settings { required, allow_stale: setting(s, "/allow_stale_approvals")?.unwrap_or(false), teams })
}

fn evaluate(input: Input) -> Result<Output, String> {
    let settings = settings(&input)?;
    let mut out = Output::default();
    let Some(paths) = &input.changed_paths else {
        out.warnings.push(Violation {
            rule: "no-change-set".into(),
            message: "no change set is known, so approvals were not checked; run with --base".into(),
            ..Violation::default()
        });
        return Ok(out);
    };
    if paths.is_empty() {
        return Ok(out); // the change does not touch this environment: nothing to approve
    }
    let head = input.commit.as_ref().map(|c| c.sha.as_str());
    let author = input.commit.as_ref().map(|c| identities(&c.author.name, &c.author.email)).unwrap_or_default();
    let mut approvers: BTreeSet<String> = BTreeSet::new();
    let mut stale: BTreeSet<String> = BTreeSet::new();
    let mut own: BTreeSet<String> = BTreeSet::new();
    for approval in &input.approvals {
        let login = normalize(&approval.by);
        if author.contains(&login) {
            own.insert(approval.by.clone());
        } else if is_stale(approval, head) && !settings.allow_stale {
            stale.insert(approval.by.clone());
        } else {
            approvers.insert(login);
        }
    }
    for who in &own {
        out.warnings.push(Violation {
            rule: "self-approval".into(),
            message: format!("`{who}` authored the change; their own approval does not count"),
            ..Violation::default()
        });
    }
    for who in stale.iter().filter(|w| !approvers.contains(&normalize(w))) {
        out.warnings.push(Violation {
            rule: "stale-approval".into(),
            message: format!(
                "`{who}` approved an earlier commit; ask for a new review of {}",
                head.unwrap_or("the head")
            ),
            ..Violation::default()
        });
    }
    if (approvers.len() as u64) < settings.required {
        out.violations.push(Violation {
            rule: "required-approvals".into(),
            message: format!(
                "{} needs {} approval{} and has {}{}",
                input.environment,
                settings.required,
                if settings.required == 1 { "" } else { "s" },
                approvers.len(),
                if approvers.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", approvers.iter().cloned().collect::<Vec<_>>().join(", "))
                }
            ),
            ..Violation::default()
        });
    }
    for changed in paths.iter().filter(|p| !p.owners.is_empty()) {
        let approved_by_owner = changed.owners.iter().any(|owner| {
            let owner = normalize(owner);
            match settings.teams.get(&owner) {
                Some(members) => members.iter().any(|m| approvers.contains(&normalize(m))),
                None => approvers.contains(&owner),
            }
        });
        if !approved_by_owner {
            out.violations.push(Violation {
                rule: "owner-approval".into(),
                message: format!(
                    "{} needs an approval from one of its owners: {}",
                    changed.path,
                    changed.owners.join(", ")
                ),
                path: changed.path.clone(),
                ..Violation::default()
            });
        }
    }
    Ok(out)
}

/// An approval given for a commit other than the head is stale; one without a commit (a trailer
/// on the head, a plain list of logins) is taken as current.
fn is_stale(approval: &Approval, head: Option<&str>) -> bool {
    match (approval.commit_id.as_deref(), head) {
        (Some(given), Some(head)) => !(head.starts_with(given) || given.starts_with(head)),
        _ => false,
    }
}

/// `@Ann`, `ann` and `Ann <ann@x>` name the same person.
fn normalize(who: &str) -> String {
    let who = who.trim();
    let who = match (who.find('<'), who.rfind('>')) {
        (Some(a), Some(b)) if a < b => &who[a + 1..b],
        _ => who,
    };
    who.trim_start_matches('@').to_lowercase()
}

/// The names an author may approve under: their name, email, the email's local part and a
/// GitHub no-reply login (`123+login@users.noreply.github.com`).
fn identities(name: &str, email: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for id in [name, email] {
        if !id.is_empty() {
            ids.insert(normalize(id));
        }
    }
    if let Some((local, _)) = email.split_once('@') {
        ids.insert(local.to_lowercase());
        if let Some((_, login)) = local.split_once('+') {
            ids.insert(login.to_lowercase());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_policy_sdk::{ChangedPath, Commit, Person};
    use serde_json::json;

    fn input(settings: Value, approvals: &[(&str, Option<&str>)], owners: &[&str]) -> Input {
        Input {
            settings,
            environment: "production".into(),
            changed_paths: Some(vec![ChangedPath {
                path: "environments/production/app.yaml".into(),
                owners: owners.iter().map(|s| s.to_string()).collect(),
            }]),
            commit: Some(Commit {
                sha: "abc123".into(),
                author: Person { name: "Dev".into(), email: "dev@example.org".into() },
                ..Commit::default()
            }),
            approvals: approvals
                .iter()
                .map(|(by, c)| Approval { by: by.to_string(), commit_id: c.map(str::to_string), ..Approval::default() })
                .collect(),
            ..Input::default()
        }
    }

    fn rules(out: &Output) -> Vec<&str> {
        out.violations.iter().map(|v| v.rule.as_str()).collect()
    }

    #[test]
    fn an_owner_approval_satisfies_one_required() {
        let out = evaluate(input(Value::Null, &[("ann", Some("abc123"))], &["@ann"])).expect("runs");
        assert!(rules(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn per_environment_minimum_and_owner_rules() {
        let settings = json!({"required_approvals": {"production": 2, "default": 1}});
        let out = evaluate(input(settings, &[("bob", None)], &["@ann"])).expect("runs");
        assert_eq!(rules(&out), ["required-approvals", "owner-approval"]);
    }

    #[test]
    fn stale_and_self_approvals_do_not_count() {
        let out = evaluate(input(Value::Null, &[("ann", Some("old999")), ("dev", None)], &[])).expect("runs");
        assert_eq!(rules(&out), ["required-approvals"]);
        let warned: Vec<&str> = out.warnings.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(warned, ["self-approval", "stale-approval"]);
        let out =
            evaluate(input(json!({"allow_stale_approvals": true}), &[("ann", Some("old999"))], &[])).expect("runs");
        assert!(rules(&out).is_empty());
    }

    #[test]
    fn team_owners_resolve_through_settings() {
        let settings = json!({"teams": {"@shop/platform": ["cy"]}});
        let out = evaluate(input(settings, &[("cy", None)], &["@shop/platform"])).expect("runs");
        assert!(rules(&out).is_empty(), "{out:?}");
        let out = evaluate(input(Value::Null, &[("cy", None)], &["@shop/platform"])).expect("runs");
        assert_eq!(rules(&out), ["owner-approval"]);
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in [json!({"required": 2}), json!({"required_approvals": "two"}), json!([1])] {
            assert!(evaluate(input(bad, &[], &[])).is_err());
        }
    }
}
