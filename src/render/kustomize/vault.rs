//! Secret values kept out of the build: each is swapped for a placeholder while transformers
//! run, and put back at the end.

use serde_json::Value;

/// Placeholders begin and end with NUL, which no YAML or JSON text a user writes can hold.
const OPEN: &str = "\u{0}cairn-sealed-";
const CLOSE: char = '\u{0}';

#[derive(Default)]
pub struct Vault {
    values: Vec<Value>,
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.values.iter_mut().for_each(crate::secrets::zeroize_value);
    }
}

impl Vault {
    /// Swaps the values at `pointers` for placeholders.
    pub fn seal(&mut self, body: &mut Value, pointers: &[String]) {
        for pointer in pointers {
            if let Some(slot) = body.pointer_mut(pointer) {
                let placeholder = self.keep(std::mem::take(slot));
                *slot = Value::String(placeholder);
            }
        }
    }

    /// Keeps a value and returns the placeholder that stands for it.
    pub fn keep(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("{OPEN}{}{CLOSE}", self.values.len() - 1)
    }

    /// Puts the sealed values of `body` back and returns the JSON pointers of every value that
    /// holds one (a string that embeds a placeholder becomes a secret as a whole).
    pub fn open(&self, body: &mut Value) -> Vec<String> {
        let mut found = Vec::new();
        if self.values.is_empty() {
            return found;
        }
        // The path is kept as steps and spelled as a pointer only where a value is found.
        let mut path: Vec<String> = Vec::new();
        self.restore(body, &mut path, &mut found);
        found
    }

    fn restore(&self, value: &mut Value, path: &mut Vec<String>, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    path.push(k.clone());
                    self.restore(v, path, found);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    self.restore(v, path, found);
                    path.pop();
                }
            }
            Value::String(s) if s.contains(OPEN) => {
                if let Some(whole) = self.whole(s) {
                    *value = whole.clone();
                } else {
                    *s = self.substitute(s);
                }
                let mut pointer = String::new();
                for step in path.iter() {
                    crate::pointer::push(&mut pointer, step);
                }
                found.push(pointer);
            }
            _ => {}
        }
    }

    /// The sealed value a string is exactly the placeholder of.
    fn whole(&self, s: &str) -> Option<&Value> {
        let index = s.strip_prefix(OPEN)?.strip_suffix(CLOSE)?;
        self.values.get(index.parse::<usize>().ok()?)
    }

    /// A string with every placeholder in it replaced by its value's text.
    fn substitute(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find(CLOSE) else {
                out.push_str(&rest[start..]);
                return out;
            };
            match after[..end].parse::<usize>().ok().and_then(|i| self.values.get(i)) {
                Some(Value::String(v)) => out.push_str(v),
                Some(other) => out.push_str(&other.to_string()),
                None => out.push_str(&rest[start..start + OPEN.len() + end + 1]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_come_back_where_they_moved() {
        let mut vault = Vault::default();
        let mut body = serde_json::json!({"data": {"a": "s3cret", "n": 5}, "x": "plain"});
        vault.seal(&mut body, &["/data/a".into(), "/data/n".into()]);
        assert!(!body.to_string().contains("s3cret"));
        // A transformer moves one value and embeds another in a larger string.
        let a = body["data"]["a"].take();
        let n = body["data"]["n"].as_str().expect("a string").to_string();
        body["moved"] = a;
        body["joined"] = Value::String(format!("port-{n}"));
        body["data"] = serde_json::json!({});
        let mut pointers = vault.open(&mut body);
        pointers.sort();
        assert_eq!(pointers, ["/joined", "/moved"]);
        assert_eq!(body["moved"], "s3cret");
        assert_eq!(body["joined"], "port-5");
    }
}
