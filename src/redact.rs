//! The one place secrets are taken out of text before it is shown: every `scheme://user:password@host`
//! in a message (an error, a log line, a printed config) keeps its user and loses its password.
//! Errors that may quote a URL (a store, Postgres, Redis or Alertmanager that cannot be
//! reached) go through [`secrets`] before they are printed, and so does every log line.

use std::borrow::Cow;

/// What a password is replaced with.
pub const REDACTED: &str = "REDACTED";

/// `text` with the password of every URL in it replaced by `REDACTED`
/// (`postgres://claimcheck:S3cret@db/app` → `postgres://claimcheck:REDACTED@db/app`).
/// A URL ends at whitespace or a quote; within it, the userinfo is what precedes its last `@`,
/// so a password holding `@` or `/` unescaped is hidden whole too.
pub fn secrets(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        match url.rfind('@') {
            Some(amp) if url[..amp].contains(':') => {
                let colon = url[..amp].find(':').unwrap_or(amp);
                out.push_str(&url[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&url[amp..]);
                changed = true;
            }
            _ => out.push_str(url),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// [`secrets`] over bytes (a log line): returned as they are unless a URL with a password
/// is in them.
pub fn secrets_in_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memmem::find(bytes, b"://").is_none() {
        return Cow::Borrowed(bytes);
    }
    let text = String::from_utf8_lossy(bytes);
    match secrets(&text) {
        Cow::Borrowed(_) => Cow::Borrowed(bytes),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_users_and_the_rest_stay() {
        for (given, shown) in [
            (
                "cannot open the store postgres://claimcheck:S3cretPassw0rd@db.internal:5432/cc: refused",
                "cannot open the store postgres://claimcheck:REDACTED@db.internal:5432/cc: refused",
            ),
            (
                "redis://:pw@127.0.0.1:6379/",
                "redis://:REDACTED@127.0.0.1:6379/",
            ),
            (
                "a \"http://u:p@am:9093/api\" and https://x:y@h two",
                "a \"http://u:REDACTED@am:9093/api\" and https://x:REDACTED@h two",
            ),
            (
                "postgres://u:p@ss/w@rd@host/db",
                "postgres://u:REDACTED@host/db",
            ),
            ("postgres://ro@db/app", "postgres://ro@db/app"),
            ("http://host:8080/path", "http://host:8080/path"),
            ("no url here: a:b@c", "no url here: a:b@c"),
            ("", ""),
        ] {
            assert_eq!(secrets(given), shown, "{given}");
        }
        assert!(matches!(secrets("http://h/x"), Cow::Borrowed(_)));
        assert_eq!(
            secrets_in_bytes(b"url=postgres://a:b@h\n").as_ref(),
            b"url=postgres://a:REDACTED@h\n"
        );
    }

    proptest::proptest! {
        /// Whatever surrounds it, the password of a URL never survives.
        #[test]
        fn a_password_never_survives(
            before in "[ -~]{0,20}",
            user in "[a-z]{0,8}",
            password in "[A-Za-z0-9!$%&()*+,;=@/]{6,16}",
            host in "[a-z]{1,8}(:[0-9]{1,5})?",
            after in "( [ -~]{0,20})?",
        ) {
            let text = format!("{before} postgres://{user}:{password}@{host}/db{after}");
            let shown = secrets(&text);
            proptest::prop_assert!(!shown.contains(&format!(":{password}@")), "{shown}");
        }
    }
}
