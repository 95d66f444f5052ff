//! Redaction of plain text: values that are secret by where they came from (an environment
//! variable a check's header or a channel's URL names, a decrypted file a command reads) are
//! replaced, with their base64 forms, before text is shown or recorded. Structured data with
//! known secret pointers goes through [`super::Masker`] instead.

use base64::Engine;

/// Replaces every secret value (and its base64) in text that is about to be shown or recorded.
#[derive(Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn add(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        for form in [
            value.to_string(),
            base64::engine::general_purpose::STANDARD.encode(value),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value),
        ] {
            if !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        // Longest first, so a secret that contains another is replaced whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<secret>");
            }
        }
        out
    }
}
