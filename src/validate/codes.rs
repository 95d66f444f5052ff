//! The registry of finding codes: every stable code cairn reports, each with a short description.
//! docs/findings.md documents exactly these (tests/finding_codes.rs fails when the two differ), so
//! a finding is made from a [`Code`], a [`Family`] or a [`PolicyRule`], never from a string.

use std::fmt;

/// Declares [`Code`] with its string and description in one place, so the list of every code
/// ([`Code::ALL`]) cannot miss a variant.
macro_rules! codes {
    ($($(#[$meta:meta])* $variant:ident = $code:literal: $description:literal,)*) => {
        /// A fixed finding code of cairn's own checks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[$meta])* $variant,)*
        }

        impl Code {
            /// Every code, in the order docs/findings.md lists them.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable code as reported (`schema/type`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// What the finding means, in a few words.
            pub const fn description(self) -> &'static str {
                match self {
                    $(Code::$variant => $description,)*
                }
            }
        }
    };
}

codes! {
    SchemaType = "schema/type": "a value has the wrong type",
    SchemaRequired = "schema/required": "a required field is missing",
    /// Only with `--strict`.
    SchemaUnknownField = "schema/unknown-field": "a field the schema does not declare",
    SchemaEnum = "schema/enum": "a value is not one of the allowed values",
    SchemaPattern = "schema/pattern": "a string does not match the schema's pattern",
    SchemaFormat = "schema/format": "a string is not in the declared format",
    SchemaRange = "schema/range": "a number, string length or list length is outside its limits",
    SchemaOneOf = "schema/one-of": "a value matches none, or more than one, of the allowed forms",
    SchemaInvalid = "schema/invalid": "another schema keyword failed",
    SchemaMissing = "schema/missing": "no schema is known for the object's apiVersion and kind",
    ObjectInvalidName = "object/invalid-name": "`metadata.name` is not a valid name for the kind",
    ObjectInvalidNamespace = "object/invalid-namespace": "`metadata.namespace` is not a DNS label",
    ObjectInvalidLabel = "object/invalid-label": "a label key or value is not valid",
}

impl Code {
    /// The code a reported string stands for, if it is one of these.
    pub fn parse(code: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A family of codes whose last parts are only known at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `policy/<binding>/<rule>`: a bound policy plugin's rule, under the binding's name.
    Policy,
}

impl Family {
    pub const ALL: &'static [Family] = &[Family::Policy];

    /// The family as docs/findings.md writes it.
    pub const fn pattern(self) -> &'static str {
        match self {
            Family::Policy => "policy/<binding>/<rule>",
        }
    }

    pub const fn description(self) -> &'static str {
        match self {
            Family::Policy => "a bound policy plugin reports a violation of one of its rules",
        }
    }
}

/// The code of a policy finding: the binding's name in `cairn.yaml` and the rule's stable id.
pub fn policy_code(binding: &str, rule: &str) -> String {
    format!("policy/{binding}/{rule}")
}

/// Rule ids cairn itself reports in a binding's [`Family::Policy`] codes, whatever the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyRule {
    /// The plugin answered `allowed: false` without naming a violation.
    Denied,
}

impl PolicyRule {
    pub const ALL: &'static [PolicyRule] = &[PolicyRule::Denied];

    pub const fn as_str(self) -> &'static str {
        match self {
            PolicyRule::Denied => "denied",
        }
    }

    pub const fn description(self) -> &'static str {
        match self {
            PolicyRule::Denied => "the plugin denied the change without naming a violation",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(Code::parse(code.as_str()), Some(*code));
            assert!(!Code::ALL[..i].iter().any(|c| c.as_str() == code.as_str()), "{code} twice");
            assert!(!code.description().is_empty());
        }
        assert_eq!(Code::parse("schema/typo"), None);
    }

    #[test]
    fn policy_codes_name_the_binding_and_the_rule() {
        assert_eq!(policy_code("baseline", "privileged"), "policy/baseline/privileged");
        assert_eq!(
            policy_code("<binding>", PolicyRule::Denied.as_str()),
            Family::Policy.pattern().replace("<rule>", "denied")
        );
    }
}
