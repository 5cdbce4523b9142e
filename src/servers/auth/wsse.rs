//! WS-Security's UsernameToken, the login ONVIF clients put in a SOAP
//! header: the password in clear, or its digest
//! `Base64(SHA-1(nonce ‖ created ‖ password))` (OASIS Username Token
//! Profile 1.0), with the nonces seen remembered so that a token cannot be
//! sent twice.

use std::collections::VecDeque;

use base64::Engine;

use super::hash::ct_eq;

/// How far a token's `Created` time may be from this machine's clock.
pub const TOKEN_WINDOW_S: u64 = 300;
/// Most token nonces remembered (the oldest are forgotten first; a token
/// older than [`TOKEN_WINDOW_S`] is refused anyway).
const MAX_SEEN: usize = 4096;

/// A UsernameToken as a SOAP header carried it.
#[derive(Clone, Copy)]
pub struct UsernameToken<'a> {
    /// `wsse:Username`.
    pub username: &'a str,
    /// `wsse:Password`: the digest in base64, or the password itself.
    pub password: &'a str,
    /// Whether `password` is a digest (`#PasswordDigest`) rather than the
    /// password in clear (`#PasswordText`).
    pub digest: bool,
    /// `wsse:Nonce`, base64.
    pub nonce: Option<&'a str>,
    /// `wsu:Created`, as sent (the digest covers this exact text).
    pub created: Option<&'a str>,
}

/// Never shows the password or its digest.
impl std::fmt::Debug for UsernameToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsernameToken")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("digest", &self.digest)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// The digest a client computes from `nonce` (base64), `created` and the
/// password; `None` if the nonce is not base64.
pub fn password_digest(nonce: &str, created: &str, password: &str) -> Option<Vec<u8>> {
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(nonce.trim())
        .ok()?;
    let mut sha = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    sha.update(&nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    Some(sha.finish().as_ref().to_vec())
}

/// True if the base64 `sent` digest is `expected`.
pub fn digest_matches(sent: &str, expected: &[u8]) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(sent.trim())
        .is_ok_and(|sent| ct_eq(&sent, expected))
}

/// The nonces of accepted digest tokens, with when they were created.
#[derive(Default)]
pub(super) struct SeenNonces(VecDeque<(String, u64)>);

impl SeenNonces {
    /// Records `nonce` (created at Unix time `created`); false if it was
    /// seen already.
    pub(super) fn first_use(&mut self, nonce: &str, created: u64, now: u64) -> bool {
        self.0.retain(|(_, at)| at.abs_diff(now) <= TOKEN_WINDOW_S);
        if self.0.iter().any(|(n, _)| n == nonce) {
            return false;
        }
        if self.0.len() >= MAX_SEEN {
            self.0.pop_front();
        }
        self.0.push_back((nonce.to_owned(), created));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_of_the_profile_s_example() {
        // Nonce, Created and password from the ONVIF Core Specification's
        // example (section 5.12.2.1), digest computed with Python's
        // hashlib: base64(sha1(b64decode(nonce) + created + password)).
        let digest = password_digest(
            "LKqI6G/AikKCQrN0zqZFlg==",
            "2010-09-16T07:50:45Z",
            "userpassword",
        )
        .unwrap();
        assert!(digest_matches("tuOSpGlFlIXsozq4HFNeeGeFLEI=", &digest));
        assert!(!digest_matches("tuOSpGlFlIXsozq4HFNeeGeFLEJ=", &digest));
        assert!(!digest_matches("not base64!", &digest));
        assert_eq!(password_digest("%%%", "x", "y"), None);
    }

    #[test]
    fn a_nonce_is_taken_once_within_the_window() {
        let mut seen = SeenNonces::default();
        assert!(seen.first_use("a", 1000, 1000));
        assert!(!seen.first_use("a", 1000, 1001));
        assert!(seen.first_use("b", 1000, 1001));
        // Forgotten once outside the window (the token is too old by then).
        assert!(seen.first_use("a", 2000, 2000));
        for i in 0..MAX_SEEN + 10 {
            seen.first_use(&i.to_string(), 2000, 2000);
        }
        assert!(seen.0.len() <= MAX_SEEN);
    }
}
