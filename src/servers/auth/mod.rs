//! Who may watch, without I/O: RTSP Digest authentication (RFC 7616 and
//! RFC 2617 with MD5 and `qop=auth`, and RFC 2069's form without `qop`,
//! which GStreamer and live555 send), Basic (RFC 7617) where allowed,
//! ONVIF's WS-Security UsernameToken, the
//! server's nonces (bounded in number, expiring), and throttling of failed
//! attempts per client address (bounded in memory whatever the number of
//! addresses). Time comes in as an argument, so every rule is tested
//! without waiting.
//!
//! `Auth` checks an attempt here; its parts sit below: `credentials` (the
//! `Authorization` header), `nonces`, `failures` (throttling), `hash`
//! (MD5 as Digest uses it) and `wsse` (the UsernameToken's digest).

mod credentials;
mod failures;
mod hash;
mod nonces;
pub mod wsse;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use credentials::{Credentials, DigestResponse};
use failures::Failures;
use hash::{Ha1, ct_eq, md5_hex, parse_hex};
pub use hash::{ha1, to_hex};
use nonces::Nonces;
use wsse::{SeenNonces, TOKEN_WINDOW_S, UsernameToken};

use crate::config::AuthConfig;

/// Longest user name shown in the log.
const LOGGED_NAME_CHARS: usize = 64;

/// The server's users and the state of their logins. Shared by every
/// connection.
pub struct Auth {
    realm: String,
    basic_on_plain: bool,
    users: HashMap<String, Ha1>,
    /// The passwords of the users given one in clear (a UsernameToken's
    /// digest needs it; an `ha1` cannot give it).
    passwords: HashMap<String, String>,
    state: Mutex<State>,
    failures: AtomicU64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    nonces: Nonces,
    failures: Failures,
    tokens: SeenNonces,
}

/// One request's claim to be let in.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The request's method, e.g. "DESCRIBE".
    pub method: &'a str,
    /// The request URL, as the request line gave it.
    pub url: &'a url::Url,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// Where the request comes from.
    pub client: IpAddr,
    /// True on an encrypted connection (Basic is allowed there).
    pub secure: bool,
    /// The time now.
    pub now: Instant,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it in: `user` checked out.
    Allowed {
        /// Who it is.
        user: String,
    },
    /// Answer `401` with fresh challenges; `stale` when the credentials
    /// were right but the nonce was old (the client retries on its own).
    Challenge {
        /// Whether to say `stale=true`.
        stale: bool,
    },
    /// The address failed too often: answer `503` with `Retry-After`,
    /// without checking the credentials.
    Throttled {
        /// How long it must wait.
        retry_after: Duration,
    },
}

impl Auth {
    /// The users of `[auth]`; `None` when there are none (the stream is open).
    pub fn new(config: &AuthConfig) -> Option<Self> {
        if config.users.is_empty() {
            return None;
        }
        let users = config
            .users
            .iter()
            .map(|u| {
                let ha1 = match (&u.ha1, &u.password) {
                    (Some(hex), _) => parse_hex(hex).expect("ha1 checked by the config"),
                    (None, Some(password)) => ha1(&u.name, &config.realm, password),
                    (None, None) => unreachable!("a password or ha1 checked by the config"),
                };
                (u.name.clone(), ha1)
            })
            .collect();
        let passwords = config
            .users
            .iter()
            .filter_map(|u| Some((u.name.clone(), u.password.clone()?)))
            .collect();
        Some(Self {
            realm: config.realm.clone(),
            basic_on_plain: config.basic,
            users,
            passwords,
            state: Mutex::default(),
            failures: AtomicU64::new(0),
        })
    }

    /// The realm clients are challenged with.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// How many users there are.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Requests refused for wrong credentials since the start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Checks a request's credentials.
    pub fn check(&self, a: &Attempt) -> Verdict {
        let mut state = self.state.lock().unwrap();
        if let Some(retry_after) = state.failures.blocked(a.client, a.now) {
            return Verdict::Throttled { retry_after };
        }
        let Some(header) = a.authorization else {
            return Verdict::Challenge { stale: false };
        };
        let outcome = match Credentials::parse(header) {
            Some(Credentials::Digest(d)) => self.check_digest(&d, a, &mut state.nonces),
            Some(Credentials::Basic { user, password }) if self.basic_allowed(a.secure) => {
                match self.users.get(&user) {
                    Some(known) if ct_eq(known, &ha1(&user, &self.realm, &password)) => {
                        Outcome::Valid(user)
                    }
                    Some(_) => Outcome::invalid(Some(user), "wrong password"),
                    None => Outcome::invalid(Some(user), "no such user"),
                }
            }
            Some(Credentials::Basic { user, .. }) => Outcome::invalid(
                Some(user),
                "Basic is refused on plain RTSP (auth.basic = true allows it)",
            ),
            None => Outcome::invalid(None, "unreadable Authorization header"),
        };
        self.settle(&mut state, outcome, a.client, a.now)
    }

    /// Checks a SOAP request's WS-Security UsernameToken (`None`: it had
    /// none), at `now` and Unix time `wall`. A digest must be fresh (its
    /// `Created` within [`TOKEN_WINDOW_S`] of this clock) and its nonce
    /// new; the password in clear is taken where Basic would be.
    pub fn check_token(
        &self,
        token: Option<&UsernameToken>,
        client: IpAddr,
        secure: bool,
        now: Instant,
        wall: u64,
    ) -> Verdict {
        let mut state = self.state.lock().unwrap();
        if let Some(retry_after) = state.failures.blocked(client, now) {
            return Verdict::Throttled { retry_after };
        }
        let Some(t) = token else {
            return Verdict::Challenge { stale: false };
        };
        let outcome = self.check_token_of(t, secure, wall, &mut state.tokens);
        self.settle(&mut state, outcome, client, now)
    }

    fn check_token_of(
        &self,
        t: &UsernameToken,
        secure: bool,
        wall: u64,
        seen: &mut SeenNonces,
    ) -> Outcome {
        let user = t.username.to_owned();
        let invalid = |why| Outcome::invalid(Some(user.clone()), why);
        let Some(known) = self.users.get(t.username) else {
            return invalid("no such user");
        };
        if !t.digest {
            if !self.basic_allowed(secure) {
                return invalid(
                    "a password in clear is refused on plain HTTP (auth.basic = true allows it)",
                );
            }
            return if ct_eq(known, &ha1(t.username, &self.realm, t.password)) {
                Outcome::Valid(user)
            } else {
                invalid("wrong password")
            };
        }
        let Some(password) = self.passwords.get(t.username) else {
            return invalid(
                "ONVIF's password digest needs the user's password in the configuration \
                 (auth.users[].password), not only its ha1",
            );
        };
        let (Some(nonce), Some(created)) = (t.nonce, t.created) else {
            return invalid("a password digest without Nonce or Created");
        };
        let Some(expected) = wsse::password_digest(nonce, created, password) else {
            return invalid("a Nonce that is not base64");
        };
        if !wsse::digest_matches(t.password, &expected) {
            return invalid("wrong password");
        }
        let Some(at) = crate::format::civil::Civil::parse_xml(created) else {
            return invalid("an unreadable Created time");
        };
        if at.abs_diff(wall) > TOKEN_WINDOW_S {
            return invalid(
                "the token's Created time is more than 5 minutes from this camera's clock \
                 (is the camera's or the client's clock wrong?)",
            );
        }
        if !seen.first_use(nonce, at, wall) {
            return invalid("a token sent before (replayed)");
        }
        Outcome::Valid(user)
    }

    /// The verdict on a checked attempt from `client`: a failure is
    /// counted (and logged once a window), a success clears the count.
    fn settle(&self, state: &mut State, outcome: Outcome, client: IpAddr, now: Instant) -> Verdict {
        match outcome {
            Outcome::Valid(user) => {
                state.failures.forget(client, now);
                Verdict::Allowed { user }
            }
            Outcome::Stale => Verdict::Challenge { stale: true },
            Outcome::Invalid { user, why } => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let (count, log) = state.failures.record(client, now);
                if log {
                    let user = user.as_deref().map(shorten).unwrap_or_default();
                    tracing::warn!(
                        client = %client,
                        user = %user,
                        failures = count,
                        "authentication failed for user {user:?} from {client}: {why} ({count} failed attempts in the last minute)",
                    );
                }
                Verdict::Challenge { stale: false }
            }
        }
    }

    /// The `WWW-Authenticate` values of a `401`, Digest first, each with a
    /// fresh nonce remembered from `now`.
    pub fn challenges(&self, stale: bool, secure: bool, now: Instant) -> Vec<String> {
        let nonce = self.state.lock().unwrap().nonces.issue(now);
        // live555 reads `realm` and then `nonce`, in this order and form.
        let mut digest = format!(
            "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"",
            self.realm
        );
        if stale {
            digest.push_str(", stale=true");
        }
        let mut out = vec![digest];
        if self.basic_allowed(secure) {
            out.push(format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm));
        }
        out
    }

    fn basic_allowed(&self, secure: bool) -> bool {
        secure || self.basic_on_plain
    }

    fn check_digest(&self, d: &DigestResponse, a: &Attempt, nonces: &mut Nonces) -> Outcome {
        let invalid = |why| Outcome::invalid(Some(d.username.clone()), why);
        let Some(known) = self.users.get(&d.username) else {
            return invalid("no such user");
        };
        if d.realm != self.realm {
            return invalid("wrong realm");
        }
        if !d
            .algorithm
            .as_deref()
            .is_none_or(|x| x.eq_ignore_ascii_case("MD5"))
        {
            return invalid("unsupported digest algorithm");
        }
        if !names_request(&d.uri, a.url) {
            return invalid("the digest is for another URL");
        }
        let ha2 = md5_hex(&[a.method, ":", &d.uri]);
        let ha1 = to_hex(known);
        let expected = match &d.qop {
            None => md5_hex(&[&ha1, ":", &d.nonce, ":", &ha2]),
            Some(qop) if qop == "auth" => {
                let (Some(nc), Some(cnonce)) = (&d.nc, &d.cnonce) else {
                    return invalid("qop without nc or cnonce");
                };
                md5_hex(&[&ha1, ":", &d.nonce, ":", nc, ":", cnonce, ":auth:", &ha2])
            }
            Some(_) => return invalid("unsupported qop"),
        };
        if !ct_eq(
            expected.as_bytes(),
            d.response.to_ascii_lowercase().as_bytes(),
        ) {
            return invalid("wrong password");
        }
        // The password is right; the nonce must still be ours and fresh.
        let count = match &d.nc {
            Some(nc) if d.qop.is_some() => match u32::from_str_radix(nc, 16) {
                Ok(n) => Some(n),
                Err(_) => return invalid("unreadable nc"),
            },
            _ => None,
        };
        if nonces.accept(&d.nonce, count, a.now) {
            Outcome::Valid(d.username.clone())
        } else {
            Outcome::Stale
        }
    }
}

enum Outcome {
    Valid(String),
    /// Right password, but a nonce that is unknown, old or replayed.
    Stale,
    /// Wrong: the user name tried, if there was one, and why.
    Invalid {
        user: Option<String>,
        why: &'static str,
    },
}

impl Outcome {
    fn invalid(user: Option<String>, why: &'static str) -> Self {
        Self::Invalid { user, why }
    }
}

/// True if the Digest `uri` names the request's URL: the same text, or the
/// same path (clients send a full URL or its path; some add a port or a
/// slash), or the stream a track's URL is in: live555 (openRTSP, VLC) signs
/// a SETUP of `/stream/trackID=0` with the stream's base URL `/stream/`.
/// Both name the same stream, so the same right to watch.
fn names_request(uri: &str, url: &url::Url) -> bool {
    if uri == url.as_str() {
        return true;
    }
    let path = match url::Url::parse(uri) {
        Ok(u) => u.path().to_string(),
        Err(_) if uri.starts_with('/') => uri.split('?').next().unwrap_or(uri).to_string(),
        Err(_) => return false,
    };
    let (signed, requested) = (path.trim_end_matches('/'), url.path().trim_end_matches('/'));
    signed == requested
        || requested
            .rsplit_once('/')
            .is_some_and(|(stream, _track)| !stream.is_empty() && signed == stream)
}

/// A user name as the log shows it: at most [`LOGGED_NAME_CHARS`].
fn shorten(name: &str) -> String {
    name.chars().take(LOGGED_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::failures::FREE_FAILURES;
    use super::nonces::{MAX_NONCES, NONCE_LIFETIME};
    use super::*;
    use crate::config::UserConfig;

    const URL: &str = "rtsp://127.0.0.1:8554/stream";

    fn auth(basic: bool) -> Auth {
        Auth::new(&AuthConfig {
            realm: "streamcam".into(),
            basic,
            users: vec![
                UserConfig {
                    name: "viewer".into(),
                    password: Some("secret".into()),
                    ha1: None,
                },
                UserConfig {
                    name: "admin".into(),
                    password: None,
                    ha1: Some(to_hex(&ha1("admin", "streamcam", "hunter2"))),
                },
            ],
        })
        .unwrap()
    }

    fn attempt<'a>(url: &'a url::Url, header: Option<&'a str>, now: Instant) -> Attempt<'a> {
        Attempt {
            method: "DESCRIBE",
            url,
            authorization: header,
            client: "192.0.2.7".parse().unwrap(),
            secure: false,
            now,
        }
    }

    /// The nonce of a challenge.
    fn nonce_of(challenge: &str) -> String {
        let (_, rest) = challenge.split_once("nonce=\"").unwrap();
        rest.split('"').next().unwrap().to_string()
    }

    /// What a client computes, with qop=auth (`nc` given) or without.
    fn digest(user: &str, password: &str, nonce: &str, uri: &str, nc: Option<u32>) -> String {
        let ha1 = to_hex(&ha1(user, "streamcam", password));
        let ha2 = md5_hex(&["DESCRIBE:", uri]);
        match nc {
            Some(nc) => {
                let nc = format!("{nc:08x}");
                let r = md5_hex(&[&ha1, ":", nonce, ":", &nc, ":0a4f113b:auth:", &ha2]);
                format!(
                    "Digest username=\"{user}\", realm=\"streamcam\", nonce=\"{nonce}\", uri=\"{uri}\", \
                     response=\"{r}\", qop=auth, nc={nc}, cnonce=\"0a4f113b\", algorithm=MD5"
                )
            }
            None => {
                let r = md5_hex(&[&ha1, ":", nonce, ":", &ha2]);
                format!(
                    "Digest username=\"{user}\", realm=\"streamcam\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\""
                )
            }
        }
    }

    #[test]
    fn no_credentials_get_a_challenge_with_a_fresh_nonce() {
        let a = auth(false);
        let url = url::Url::parse(URL).unwrap();
        let now = Instant::now();
        assert_eq!(
            a.check(&attempt(&url, None, now)),
            Verdict::Challenge { stale: false }
        );
        let c1 = a.challenges(false, false, now);
        let c2 = a.challenges(false, false, now);
        assert_eq!(c1.len(), 1, "no Basic on plain RTSP: {c1:?}");
        assert!(
            c1[0].starts_with("Digest realm=\"streamcam\", nonce=\""),
            "{c1:?}"
        );
        assert!(c1[0].contains("qop=\"auth\""));
        assert_ne!(nonce_of(&c1[0]), nonce_of(&c2[0]));
        assert!(a.challenges(true, false, now)[0].ends_with("stale=true"));
    }

    #[test]
    fn digest_with_and_without_qop_and_ha1_users() {
        let a = auth(false);
        let url = url::Url::parse(URL).unwrap();
        let now = Instant::now();
        let nonce = nonce_of(&a.challenges(false, false, now)[0]);
        for (user, password, nc) in [
            ("viewer", "secret", Some(1)),
            ("viewer", "secret", Some(2)),
            ("viewer", "secret", None),
            ("admin", "hunter2", Some(3)),
        ] {
            let h = digest(user, password, &nonce, URL, nc);
            assert_eq!(
                a.check(&attempt(&url, Some(&h), now)),
                Verdict::Allowed { user: user.into() },
                "{h}"
            );
        }
        // The path alone as the uri (some clients), and a track URL mismatch.
        let h = digest("viewer", "secret", &nonce, "/stream", None);
        assert!(matches!(
            a.check(&attempt(&url, Some(&h), now)),
            Verdict::Allowed { .. }
        ));
        let h = digest(
            "viewer",
            "secret",
            &nonce,
            "rtsp://127.0.0.1:8554/other",
            None,
        );
        assert_eq!(
            a.check(&attempt(&url, Some(&h), now)),
            Verdict::Challenge { stale: false }
        );
    }

    #[test]
    fn wrong_password_unknown_user_and_wrong_realm_are_refused() {
        let a = auth(false);
        let url = url::Url::parse(URL).unwrap();
        let now = Instant::now();
        let nonce = nonce_of(&a.challenges(false, false, now)[0]);
        for h in [
            digest("viewer", "wrong", &nonce, URL, Some(1)),
            digest("nobody", "secret", &nonce, URL, Some(1)),
            digest("viewer", "secret", &nonce, URL, Some(1))
                .replace("realm=\"streamcam\"", "realm=\"x\""),
            "Digest username=\"viewer\"".into(),
            "Bearer abc".into(),
        ] {
            assert_eq!(
                a.check(&attempt(&url, Some(&h), now)),
                Verdict::Challenge { stale: false },
                "{h}"
            );
        }
    }

    #[test]
    fn old_unknown_and_replayed_nonces_are_stale() {
        let a = auth(false);
        let url = url::Url::parse(URL).unwrap();
        let now = Instant::now();
        let nonce = nonce_of(&a.challenges(false, false, now)[0]);
        let h = digest("viewer", "secret", &nonce, URL, Some(5));
        assert!(matches!(
            a.check(&attempt(&url, Some(&h), now)),
            Verdict::Allowed { .. }
        ));
        assert_eq!(
            a.check(&attempt(&url, Some(&h), now)),
            Verdict::Challenge { stale: true },
            "the same nc again is a replay"
        );
        let h = digest("viewer", "secret", &nonce, URL, None);
        let later = now + NONCE_LIFETIME + Duration::from_secs(1);
        assert_eq!(
            a.check(&attempt(&url, Some(&h), later)),
            Verdict::Challenge { stale: true }
        );
        let h = digest(
            "viewer",
            "secret",
            "00112233445566778899aabbccddeeff",
            URL,
            None,
        );
        assert_eq!(
            a.check(&attempt(&url, Some(&h), now)),
            Verdict::Challenge { stale: true }
        );
    }

    #[test]
    fn nonces_are_bounded() {
        let a = auth(false);
        let now = Instant::now();
        let first = nonce_of(&a.challenges(false, false, now)[0]);
        for _ in 0..MAX_NONCES {
            a.challenges(false, false, now);
        }
        let state = a.state.lock().unwrap();
        assert_eq!(state.nonces.live.len(), MAX_NONCES);
        assert!(
            !state.nonces.live.contains_key(&first),
            "the oldest went first"
        );
    }

    #[test]
    fn basic_only_where_allowed() {
        let url = url::Url::parse(URL).unwrap();
        let now = Instant::now();
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("viewer:secret")
        );
        let strict = auth(false);
        assert_eq!(
            strict.check(&attempt(&url, Some(&good), now)),
            Verdict::Challenge { stale: false },
            "Basic refused on plain RTSP"
        );
        let tls = Attempt {
            secure: true,
            ..attempt(&url, Some(&good), now)
        };
        assert!(matches!(strict.check(&tls), Verdict::Allowed { .. }));
        assert_eq!(
            strict.challenges(false, true, now).len(),
            2,
            "Basic offered over TLS"
        );
        let open = auth(true);
        assert!(matches!(
            open.check(&attempt(&url, Some(&good), now)),
            Verdict::Allowed { .. }
        ));
        let challenges = open.challenges(false, false, now);
        assert!(challenges[0].starts_with("Digest ") && challenges[1].starts_with("Basic "));
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:secret")
        );
        assert_eq!(
            open.check(&attempt(&url, Some(&bad), now)),
            Verdict::Challenge { stale: false }
        );
    }

    #[test]
    fn failures_throttle_the_address_and_success_resets_it() {
        let a = auth(true);
        let url = url::Url::parse(URL).unwrap();
        let t0 = Instant::now();
        let basic = |cred: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(cred)
            )
        };
        let (bad, good) = (basic("viewer:guess"), basic("viewer:secret"));
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                a.check(&attempt(&url, Some(&bad), t0)),
                Verdict::Challenge { stale: false }
            );
        }
        assert_eq!(
            a.check(&attempt(&url, Some(&bad), t0)),
            Verdict::Challenge { stale: false }
        );
        assert_eq!(
            a.check(&attempt(&url, Some(&good), t0)),
            Verdict::Throttled {
                retry_after: Duration::from_secs(1)
            },
            "blocked: not even the right password is checked"
        );
        let other = Attempt {
            client: "192.0.2.8".parse().unwrap(),
            ..attempt(&url, Some(&good), t0)
        };
        assert!(
            matches!(a.check(&other), Verdict::Allowed { .. }),
            "other addresses are not"
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            a.check(&attempt(&url, Some(&bad), t1)),
            Verdict::Challenge { stale: false }
        );
        assert_eq!(
            a.check(&attempt(&url, Some(&good), t1)),
            Verdict::Throttled {
                retry_after: Duration::from_secs(2)
            },
            "each failure doubles the wait"
        );
        let t2 = t1 + Duration::from_secs(2);
        assert!(matches!(
            a.check(&attempt(&url, Some(&good), t2)),
            Verdict::Allowed { .. }
        ));
        assert_eq!(
            a.check(&attempt(&url, Some(&bad), t2)),
            Verdict::Challenge { stale: false }
        );
        assert!(
            matches!(
                a.check(&attempt(&url, Some(&good), t2)),
                Verdict::Allowed { .. }
            ),
            "a success wiped the record"
        );
    }

    #[test]
    fn a_digest_names_its_url_or_the_stream_a_track_is_in() {
        let track = url::Url::parse("rtsp://cam:8554/stream/trackID=0").unwrap();
        for uri in [
            "rtsp://cam:8554/stream/trackID=0",
            "rtsp://cam/stream/trackID=0/",
            "/stream/trackID=0",
            "rtsp://cam:8554/stream/",
            "rtsp://cam:8554/stream",
            "/stream",
        ] {
            assert!(names_request(uri, &track), "{uri}");
        }
        for uri in [
            "rtsp://cam/other/",
            "rtsp://cam/",
            "/",
            "rtsp://cam/stream/trackID=1",
            "*",
        ] {
            assert!(!names_request(uri, &track), "{uri}");
        }
        let stream = url::Url::parse("rtsp://cam:8554/stream").unwrap();
        assert!(!names_request("rtsp://cam/", &stream));
        assert!(!names_request("rtsp://cam/stream/trackID=0", &stream));
    }
}
