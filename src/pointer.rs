//! RFC 6901 JSON pointers: the one place a key becomes a reference token and back.

/// A key as one reference token: `~` → `~0`, `/` → `~1` (`cairn/wave` → `cairn~1wave`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A reference token back to its key: `~1` → `/`, then `~0` → `~` (in that order, so `~01`
/// stays `~1`).
pub fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Appends `/` and `token`, escaped, to `pointer`.
pub fn push(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_tilde_before_slash() {
        assert_eq!(escape("cairn/wave"), "cairn~1wave");
        assert_eq!(escape("a~b/c"), "a~0b~1c");
        assert_eq!(escape("~1"), "~01");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn unescape_inverts_escape() {
        for key in ["cairn/wave", "a~b/c", "~1", "~01/", ""] {
            assert_eq!(unescape(&escape(key)), key);
        }
    }

    #[test]
    fn push_appends_an_escaped_token() {
        let mut pointer = String::from("/metadata/labels");
        push(&mut pointer, "x/y~z");
        assert_eq!(pointer, "/metadata/labels/x~1y~0z");
    }
}
