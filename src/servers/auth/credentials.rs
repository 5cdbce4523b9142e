//! What an `Authorization` header holds: Digest (RFC 7616, RFC 2617, and
//! RFC 2069's form without `qop`) or Basic (RFC 7617) credentials.
//!
//! Parsed here: the crates that parse Digest do so for clients
//! (challenges), not for servers (credentials).

use base64::Engine;

/// What an `Authorization` header holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Digest username=..., response=...`.
    Digest(DigestResponse),
    /// `Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

/// The parameters of a Digest `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestResponse {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`: what the client hashed as the request's URL.
    pub uri: String,
    /// `response`: the hash to check.
    pub response: String,
    /// `algorithm`, when given.
    pub algorithm: Option<String>,
    /// `qop`, when given (RFC 2069 clients send none).
    pub qop: Option<String>,
    /// `nc`, with `qop`.
    pub nc: Option<String>,
    /// `cnonce`, with `qop`.
    pub cnonce: Option<String>,
}

impl Credentials {
    /// Parses an `Authorization` header value; `None` if it is neither a
    /// complete Digest response nor Basic credentials.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            return Some(Self::Basic {
                user: user.into(),
                password: password.into(),
            });
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut d = DigestResponse::default();
        let (mut username, mut realm, mut nonce, mut uri, mut response) =
            (None, None, None, None, None);
        for (key, value) in parameters(rest)? {
            match key.to_ascii_lowercase().as_str() {
                "username" => username = Some(value),
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "uri" => uri = Some(value),
                "response" => response = Some(value),
                "algorithm" => d.algorithm = Some(value),
                "qop" => d.qop = Some(value.to_ascii_lowercase()),
                "nc" => d.nc = Some(value),
                "cnonce" => d.cnonce = Some(value),
                _ => {}
            }
        }
        d.username = username?;
        d.realm = realm?;
        d.nonce = nonce?;
        d.uri = uri?;
        d.response = response?;
        Some(Self::Digest(d))
    }
}

/// `key=value, key="quoted value", ...` (RFC 7235's auth-param list).
fn parameters(mut text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        text = text.trim_start_matches([' ', '\t', ',']);
        if text.is_empty() {
            return Some(out);
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim();
        if key.is_empty() || key.contains([' ', '\t', ',', '"']) {
            return None;
        }
        text = text[eq + 1..].trim_start_matches([' ', '\t']);
        let value = if let Some(quoted) = text.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            };
            text = &quoted[end + 1..];
            value
        } else {
            let end = text.find([',', ' ', '\t']).unwrap_or(text.len());
            let value = text[..end].to_string();
            text = &text[end..];
            value
        };
        out.push((key.to_string(), value));
        if out.len() > 32 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_bare_parameters() {
        let c = Credentials::parse(
            r#"Digest username="a\"b", realm="r, with comma",nonce="n", uri="rtsp://h/s", response="R", qop=auth, nc=00000001, cnonce="c""#,
        )
        .unwrap();
        let Credentials::Digest(d) = c else { panic!() };
        assert_eq!(d.username, "a\"b");
        assert_eq!(d.realm, "r, with comma");
        assert_eq!(d.qop.as_deref(), Some("auth"));
        assert_eq!(d.nc.as_deref(), Some("00000001"));
        for bad in [
            "Digest username=\"unterminated",
            "Digest =x",
            "Digest realm=\"r\"",
            "Basic !!!",
            "",
        ] {
            assert_eq!(Credentials::parse(bad), None, "{bad}");
        }
    }
}
