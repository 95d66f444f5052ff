//! The compliance policy: the workload rules platform teams expect, each with a stable id that
//! settings can switch off or tune (`rules: {<id>: {enabled: false, …}}`), and a suppression
//! annotation per object, `cairn/ignore-<rule-id>: "<reason>"`, that must give a reason.

mod rules;

use cairn_policy_sdk::{Input, Output, Violation};

use rules::{RULES, Settings};

fn main() {
    cairn_policy_sdk::run(evaluate)
}

fn evaluate(input: Input) -> Result<Output, String> {
    let settings = Settings::read(&input.settings)?;
    let mut out = Output::default();
    for object in &input.objects {
        // A suppression without a reason is itself a violation, and suppresses nothing.
        let mut suppressed = Vec::new();
        if let Some(annotations) = object.0.pointer("/metadata/annotations").and_then(|a| a.as_object()) {
            for (key, value) in annotations {
                let Some(rule) = key.strip_prefix("cairn/ignore-") else { continue };
                let pointer = format!("/metadata/annotations/{}", cairn_policy_sdk::pointer_token(key));
                if value.as_str().is_none_or(|r| r.trim().is_empty()) {
                    out.violations.push(
                        Violation::on(
                            object,
                            "suppression",
                            format!("`{key}` needs a reason: why may {rule} be ignored here?"),
                        )
                        .at(pointer),
                    );
                } else if !RULES.iter().any(|(id, _)| *id == rule) {
                    out.warnings.push(
                        Violation::on(object, "suppression", format!("`{key}` names no compliance rule")).at(pointer),
                    );
                } else {
                    suppressed.push(rule.to_string());
                }
            }
        }
        for (id, check) in RULES {
            let Some(rule) = settings.rule(id) else { continue };
            if suppressed.iter().any(|s| s == id) {
                continue;
            }
            for found in check(object, rule, &input.environment) {
                let mut v = Violation::on(object, id, found.message).at(found.pointer);
                v.severity = rule.severity.clone();
                if v.severity == "warning" {
                    out.warnings.push(v);
                } else {
                    out.violations.push(v);
                }
            }
        }
    }
    out.allowed = out.violations.is_empty();
    Ok(out)
}

#[cfg(test)]
mod tests;
