//! PocketBase filter literals. PocketBase has no parameter binding over HTTP: a filter is one
//! string, so every user-supplied value goes through [`literal`] (and [`contains`] for `~`),
//! and nothing else ever puts a user string into a filter.

/// A quoted filter literal that matches `value` exactly: `"` + value with `\` and `"`
/// backslash-escaped + `"`.
///
/// PocketBase (fexpr 0.6): escaping only the quote fails for values ending in `\` or holding
/// `\"`; the backslash must be escaped first.
pub fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A quoted literal for the `~` (LIKE, contains) operator that matches `value` as plain text:
/// the LIKE metacharacters `\`, `%` and `_` are escaped first, then the result is quoted by
/// [`literal`].
pub fn contains(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    literal(&escaped)
}

/// `field = "value"` with `value` escaped.
pub fn eq(field: &str, value: &str) -> String {
    format!("{field} = {}", literal(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(literal("a"), "\"a\"");
        assert_eq!(literal("x\" || id != \""), "\"x\\\" || id != \\\"\"");
        assert_eq!(literal("ends\\"), "\"ends\\\\\"");
        assert_eq!(contains("50%_"), "\"50\\\\%\\\\_\"");
    }
}
