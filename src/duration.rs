//! The one duration grammar: `apply --wait --timeout`, a policy binding's `timeout` and
//! `metrics --since` all read durations with [`parse`].
//!
//! ```text
//! duration := term+ | number         a bare number is seconds
//! term     := number unit            terms add up: 1h30m, 2d12h, 1m30.5s
//! number   := digits [ "." digits ]
//! unit     := ms | s | m | h | d | w  milliseconds, seconds, minutes, hours, days (24h), weeks (7d)
//! ```
//!
//! Spaces around the whole and between terms are ignored (`1h 30m`). Units are lower case; a
//! day is always 24 hours (no calendar, no time zone). Fractions below a nanosecond are dropped.
//! Each caller bounds the result itself (a policy timeout is 1ms to 1h) and says in its own
//! error message what it accepts.

use std::time::Duration;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Units from longest name to shortest, so `ms` is tried before `m`.
const UNITS: &[(&str, u128)] = &[
    ("ms", 1_000_000),
    ("s", NANOS_PER_SECOND),
    ("m", 60 * NANOS_PER_SECOND),
    ("h", 3600 * NANOS_PER_SECOND),
    ("d", 86_400 * NANOS_PER_SECOND),
    ("w", 7 * 86_400 * NANOS_PER_SECOND),
];

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("a duration cannot be empty")]
    Empty,
    #[error("expected a number at `{rest}`")]
    Number { rest: String },
    #[error("unknown unit `{unit}`: use ms, s, m, h, d or w")]
    Unit { unit: String },
    #[error("a bare number is a duration only on its own; give every term a unit")]
    MissingUnit,
    #[error("the duration is too long")]
    Overflow,
}

/// Parses a duration in the grammar of this module: `90s`, `5m`, `1h30m`, `2d`, `12w`,
/// `500ms`, `1.5h`, or a bare number of seconds (`90`, `0.5`).
/// A duration as the grammar writes it, largest units first: `1h30m`, `10s`, `250ms`; `0s` for
/// nothing. Parsing the text gives the duration back (to the millisecond).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Serializes a duration as its text (`10s`, `1m30s`), for `#[serde(serialize_with)]`.
pub fn serialize_text<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// A duration as its text both ways, for `#[serde(with = "crate::duration::text")]` on what is
/// recorded and read back (a rollout's steps in a release record).
pub mod text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        super::serialize_text(d, s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

pub fn parse(text: &str) -> Result<Duration, ParseError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut total: u128 = 0;
    let mut terms = 0;
    while !rest.is_empty() {
        let (whole, fraction, after_number) = split_number(rest)?;
        let after_number = after_number.trim_start();
        let unit_len = after_number.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        if unit.is_empty() {
            // A bare number is seconds, but only as the whole duration: `1h30` is a typo.
            if terms > 0 || !after_unit.is_empty() {
                return Err(ParseError::MissingUnit);
            }
            return nanos_to_duration(term_nanos(whole, fraction, NANOS_PER_SECOND)?);
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| ParseError::Unit { unit: unit.to_string() })?;
        total = total.checked_add(term_nanos(whole, fraction, scale)?).ok_or(ParseError::Overflow)?;
        terms += 1;
        rest = after_unit.trim_start();
    }
    nanos_to_duration(total)
}

/// Splits a leading `digits [. digits]` off `text`: the whole digits, the fraction digits, the rest.
fn split_number(text: &str) -> Result<(&str, &str, &str), ParseError> {
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let whole_len = digits(text);
    if whole_len == 0 {
        return Err(ParseError::Number { rest: text.to_string() });
    }
    let (whole, after) = text.split_at(whole_len);
    let Some(after_dot) = after.strip_prefix('.') else {
        return Ok((whole, "", after));
    };
    let fraction_len = digits(after_dot);
    if fraction_len == 0 {
        return Err(ParseError::Number { rest: text.to_string() });
    }
    let (fraction, after) = after_dot.split_at(fraction_len);
    Ok((whole, fraction, after))
}

/// `whole.fraction` units of `scale` nanoseconds each, in nanoseconds (truncated).
fn term_nanos(whole: &str, fraction: &str, scale: u128) -> Result<u128, ParseError> {
    let whole: u128 = whole.parse().map_err(|_| ParseError::Overflow)?;
    let mut nanos = whole.checked_mul(scale).ok_or(ParseError::Overflow)?;
    // Eighteen fraction digits are far below a nanosecond of the largest unit.
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        let numerator: u128 = fraction.parse().map_err(|_| ParseError::Overflow)?;
        let exponent = u32::try_from(fraction.len()).map_err(|_| ParseError::Overflow)?;
        let denominator = 10u128.pow(exponent);
        let part = numerator.checked_mul(scale).ok_or(ParseError::Overflow)? / denominator;
        nanos = nanos.checked_add(part).ok_or(ParseError::Overflow)?;
    }
    Ok(nanos)
}

fn nanos_to_duration(nanos: u128) -> Result<Duration, ParseError> {
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).map_err(|_| ParseError::Overflow)?;
    let subsec = u32::try_from(nanos % NANOS_PER_SECOND).map_err(|_| ParseError::Overflow)?;
    Ok(Duration::new(seconds, subsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> f64 {
        parse(text).unwrap_or_else(|e| panic!("`{text}`: {e}")).as_secs_f64()
    }

    #[test]
    fn single_terms_in_every_unit() {
        assert_eq!(secs("500ms"), 0.5);
        assert_eq!(secs("90s"), 90.0);
        assert_eq!(secs("5m"), 300.0);
        assert_eq!(secs("1h"), 3600.0);
        assert_eq!(secs("48h"), 48.0 * 3600.0);
        assert_eq!(secs("2d"), 2.0 * 86_400.0);
        assert_eq!(secs("90d"), 90.0 * 86_400.0);
        assert_eq!(secs("12w"), 12.0 * 7.0 * 86_400.0);
    }

    #[test]
    fn a_bare_number_is_seconds() {
        assert_eq!(secs("90"), 90.0);
        assert_eq!(secs("0.5"), 0.5);
        assert_eq!(secs(" 2 "), 2.0);
    }

    #[test]
    fn terms_add_up() {
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("1h 30m"), 5400.0);
        assert_eq!(secs("2d12h"), 2.5 * 86_400.0);
        assert_eq!(secs("1m30.5s"), 90.5);
        assert_eq!(secs("1s500ms"), 1.5);
    }

    #[test]
    fn fractions_and_spaces() {
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("2 s"), 2.0);
        assert_eq!(secs("0.5ms"), 0.0005);
        assert_eq!(parse("1.0000000001s"), Ok(Duration::new(1, 0)));
        assert_eq!(parse("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn what_is_not_a_duration() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("   "), Err(ParseError::Empty));
        assert_eq!(parse("soon"), Err(ParseError::Number { rest: "soon".into() }));
        assert_eq!(parse("-5m"), Err(ParseError::Number { rest: "-5m".into() }));
        assert_eq!(parse(".5s"), Err(ParseError::Number { rest: ".5s".into() }));
        assert_eq!(parse("5.s"), Err(ParseError::Number { rest: "5.s".into() }));
        assert_eq!(parse("5x"), Err(ParseError::Unit { unit: "x".into() }));
        assert_eq!(parse("5M"), Err(ParseError::Unit { unit: "M".into() }));
        assert_eq!(parse("5min"), Err(ParseError::Unit { unit: "min".into() }));
        assert_eq!(parse("1h30"), Err(ParseError::MissingUnit));
        assert_eq!(parse("30 1h"), Err(ParseError::MissingUnit));
        assert_eq!(parse("1h,30m"), Err(ParseError::Number { rest: ",30m".into() }));
        assert_eq!(parse("99999999999999999999999999w"), Err(ParseError::Overflow));
        assert_eq!(parse("99999999999999999999999999999999999999999s"), Err(ParseError::Overflow));
    }

    #[test]
    fn errors_say_what_is_accepted() {
        assert_eq!(parse("5x").map_err(|e| e.to_string()), Err("unknown unit `x`: use ms, s, m, h, d or w".into()));
    }
}
