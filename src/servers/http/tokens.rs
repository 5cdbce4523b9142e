//! Short-lived tokens that let the status page's WebSocket in when
//! `[auth]` is on (browsers cannot put Digest on a WebSocket).

use std::time::{Duration, Instant};

use ring::hmac;

/// How long a token from the page stays good.
const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Short-lived tokens that let the page's WebSocket in when `[auth]` is on:
/// an expiry time and its HMAC under a key made at start (so a restart
/// voids them all).
#[derive(Debug)]
pub struct Tokens {
    key: hmac::Key,
    epoch: Instant,
}

impl Tokens {
    /// Tokens under a new random key.
    pub fn new() -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            epoch: Instant::now(),
        }
    }

    /// A token good for [`TOKEN_LIFETIME`] from `now`.
    pub fn issue(&self, now: Instant) -> String {
        let expires = (now + TOKEN_LIFETIME).duration_since(self.epoch).as_secs();
        let tag = hmac::sign(&self.key, &expires.to_be_bytes());
        format!("{expires}.{}", hex(tag.as_ref()))
    }

    /// True if `token` was issued here and has not expired at `now`.
    pub fn verify(&self, token: &str, now: Instant) -> bool {
        let Some((expires, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expires), Some(tag)) = (expires.parse::<u64>(), unhex(tag)) else {
            return false;
        };
        now.duration_since(self.epoch).as_secs() < expires
            && hmac::verify(&self.key, &expires.to_be_bytes(), &tag).is_ok()
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Self::new()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire() {
        let tokens = Tokens::new();
        let now = Instant::now();
        let token = tokens.issue(now);
        assert!(tokens.verify(&token, now));
        assert!(tokens.verify(&token, now + TOKEN_LIFETIME - Duration::from_secs(2)));
        assert!(!tokens.verify(&token, now + TOKEN_LIFETIME + Duration::from_secs(1)));
        assert!(!Tokens::new().verify(&token, now), "another key");
        let (expires, tag) = token.split_once('.').unwrap();
        let later = format!("{}.{tag}", expires.parse::<u64>().unwrap() + 3600);
        assert!(!tokens.verify(&later, now), "a changed expiry");
        for bad in ["", ".", "1.zz", "x.00", "12345"] {
            assert!(!tokens.verify(bad, now), "{bad:?}");
        }
    }
}
