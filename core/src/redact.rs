//! The one way chatstore writes a URL it was given into a message, a log or a file: without
//! the secrets in it.

/// `s` (a URL, or text meant as one that may not parse) with its user part, everything between
/// `://` and the last `@` before the path, as `***`, and the value of every `password=`
/// parameter as `***` (libpq's `postgres://host/db?password=...`, and its key/value strings'
/// `host=db password=...`).
pub fn url_text(s: &str) -> String {
    let start = s.find("://").map_or(0, |i| i + 3);
    // The user part ends at the last `@` before the path; a password may hold `/` or `?`, so
    // when no `@` follows the first of them, the last `@` of the text is taken.
    let authority_end = s[start..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| start + i);
    let at = s[start..authority_end]
        .rfind('@')
        .map(|i| start + i)
        .or_else(|| s[start..].rfind('@').map(|i| start + i));
    let mut out = match at {
        Some(at) => format!("{}***{}", &s[..start], &s[at..]),
        None => s.to_owned(),
    };
    let mut from = 0;
    while let Some(found) = out[from..].find("password=").map(|i| from + i) {
        let value_start = found + "password=".len();
        // A URL's parameter, or a libpq key/value string's (`host=db password=x`).
        let is_parameter = found == 0
            || matches!(
                out.as_bytes()[found - 1],
                b'?' | b'&' | b';' | b' ' | b'\t' | b'\n' | b'\r'
            );
        if !is_parameter {
            from = value_start;
            continue;
        }
        let value_end = out[value_start..]
            .find(['&', '#', ';', ' ', '\t', '\n', '\r'])
            .map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, "***");
        from = value_start + 3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::url_text;

    #[test]
    fn secrets_are_hidden_wherever_they_are_written() {
        for (given, shown) in [
            ("postgres://me:secret@db:5432/w", "postgres://***@db:5432/w"),
            ("sqlite://x.db", "sqlite://x.db"),
            ("memory", "memory"),
            (
                "postgres:///webui?user=owui&password=hunter2",
                "postgres:///webui?user=owui&password=***",
            ),
            (
                "postgresql://owui@db:notaport/webui?password=hunter2&sslmode=require",
                "postgresql://***@db:notaport/webui?password=***&sslmode=require",
            ),
            ("redis://:pa/ss@cache:6379/0", "redis://***@cache:6379/0"),
            ("rediss://:pw@host", "rediss://***@host"),
            ("chroma://user:token@h:8000", "chroma://***@h:8000"),
            ("x://h/db?mypassword=kept", "x://h/db?mypassword=kept"),
            (
                "host=db user=owui password=hunter2 dbname=webui",
                "host=db user=owui password=*** dbname=webui",
            ),
            ("password=hun:ter2 host=db", "password=*** host=db"),
        ] {
            assert_eq!(url_text(given), shown, "{given}");
        }
    }
}
