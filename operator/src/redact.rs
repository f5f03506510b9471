//! Scrubbing of error texts that may quote a secret (defence in depth: messages are built from
//! names and redacted URLs, but an error from a library could still quote its input).

/// `text` with `secret` and, when `secret` looks like a URL with user info, its password (and the
/// whole user info) replaced by `***`. Works on malformed URLs too: it does not parse, it cuts.
pub fn scrub(text: &str, secret: &str) -> String {
    let mut out = text.to_string();
    let secret = secret.trim();
    let mut parts: Vec<&str> = vec![secret];
    if let Some((before, _host)) = secret.rsplit_once('@') {
        // Drop the scheme however it is spelled (`redis://`, `redis:/`, `redis:`).
        let userinfo = before.split_once(':').map(|(_, r)| r.trim_start_matches('/')).unwrap_or(before);
        parts.push(userinfo);
        if let Some((_, pw)) = userinfo.split_once(':') {
            parts.push(pw);
        }
    }
    for p in parts {
        if p.len() >= 3 {
            out = out.replace(p, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn secrets_are_cut_out_of_texts_whether_or_not_the_url_parses() {
        let t = scrub("failed: redis:/:SOMEPASSWORD@127.0.0.1:6379/0 refused", "redis:/:SOMEPASSWORD@127.0.0.1:6379/0");
        assert!(!t.contains("SOMEPASSWORD"), "{t}");
        let t = scrub("auth failed for SOMEPASSWORD", "redis://user:SOMEPASSWORD@h:1/0");
        assert!(!t.contains("SOMEPASSWORD"), "{t}");
        let t = scrub("bad value sk-the-api-key", "sk-the-api-key");
        assert!(!t.contains("sk-the-api-key"), "{t}");
        assert_eq!(scrub("nothing here", "redis://h:1"), "nothing here");
    }
}
