//! The nearest valid name for a misspelt one, for error messages (`did you mean `layers`?`).

/// "; did you mean `x`?" when a candidate is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let best = candidates
        .map(|c| (strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()), c))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d <= 2.max(word.len() / 3) => format!("; did you mean `{c}`?"),
        _ => String::new(),
    }
}
