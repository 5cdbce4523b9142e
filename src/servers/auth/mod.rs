//! Who may watch, without I/O: RTSP Digest authentication (RFC 7616 and
//! RFC 2617 with MD5 and `qop=auth`, and RFC 2069's form without `qop`,
//! which GStreamer and live555 send), Basic (RFC 7617) where allowed, the
//! server's nonces (bounded in number, expiring), and throttling of failed
//! attempts per client address (bounded in memory whatever the number of
//! addresses). Time comes in as an argument, so every rule is tested
//! without waiting.
//!
//! The `Authorization` parser is written here: the crates that parse
//! Digest do so for clients (challenges), not for servers (credentials).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use md5::{Digest as _, Md5};

use crate::config::AuthConfig;

/// How long a nonce is good for; a request with an older one is answered
/// `401` with `stale=true`, and the client retries with a fresh one.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(600);
/// Most nonces remembered: the oldest go first.
pub const MAX_NONCES: usize = 1024;
/// Failed attempts are counted over this window.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Failed attempts an address may make in [`FAILURE_WINDOW`] before it is
/// made to wait.
pub const FREE_FAILURES: u32 = 5;
/// Longest an address is made to wait after failing.
pub const MAX_BLOCK: Duration = Duration::from_secs(60);
/// Most client addresses whose failures are remembered.
pub const MAX_TRACKED_ADDRESSES: usize = 4096;
/// Longest user name shown in the log.
const LOGGED_NAME_CHARS: usize = 64;

/// MD5("name:realm:password").
type Ha1 = [u8; 16];

/// The server's users and the state of their logins. Shared by every
/// connection.
pub struct Auth {
    realm: String,
    basic_on_plain: bool,
    users: HashMap<String, Ha1>,
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
        Some(Self {
            realm: config.realm.clone(),
            basic_on_plain: config.basic,
            users,
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
        match outcome {
            Outcome::Valid(user) => {
                state.failures.forget(a.client, a.now);
                Verdict::Allowed { user }
            }
            Outcome::Stale => Verdict::Challenge { stale: true },
            Outcome::Invalid { user, why } => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let (count, log) = state.failures.record(a.client, a.now);
                if log {
                    let user = user.as_deref().map(shorten).unwrap_or_default();
                    tracing::warn!(
                        client = %a.client,
                        user = %user,
                        failures = count,
                        "authentication failed for user {user:?} from {}: {why} ({count} failed attempts in the last minute)",
                        a.client,
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

/// The server's nonces: how old each is and the highest `nc` seen with it.
#[derive(Default)]
struct Nonces {
    live: HashMap<String, NonceState>,
    order: VecDeque<String>,
}

struct NonceState {
    issued: Instant,
    highest_nc: u32,
}

impl Nonces {
    /// A new random nonce.
    fn issue(&mut self, now: Instant) -> String {
        while self.order.len() >= MAX_NONCES {
            if let Some(old) = self.order.pop_front() {
                self.live.remove(&old);
            }
        }
        let nonce = to_hex(&rand::random::<[u8; 16]>());
        self.live.insert(
            nonce.clone(),
            NonceState {
                issued: now,
                highest_nc: 0,
            },
        );
        self.order.push_back(nonce.clone());
        nonce
    }

    /// True if `nonce` is ours and fresh, and `nc` (with `qop`) is higher
    /// than any seen with it.
    fn accept(&mut self, nonce: &str, nc: Option<u32>, now: Instant) -> bool {
        let Some(state) = self.live.get_mut(nonce) else {
            return false;
        };
        if now.saturating_duration_since(state.issued) > NONCE_LIFETIME {
            return false;
        }
        match nc {
            Some(n) if n <= state.highest_nc => false,
            Some(n) => {
                state.highest_nc = n;
                true
            }
            None => true,
        }
    }
}

/// Failed attempts per client address (an IPv6 client by its /64, which
/// one host can fill at will).
#[derive(Default)]
struct Failures(HashMap<IpAddr, FailureState>);

struct FailureState {
    /// Failures since `since`.
    count: u32,
    since: Instant,
    last: Instant,
    blocked_until: Option<Instant>,
    logged: Option<Instant>,
}

impl Failures {
    fn key(client: IpAddr) -> IpAddr {
        match client.to_canonical() {
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
            v4 => v4,
        }
    }

    /// How long `client` must still wait, if it is blocked.
    fn blocked(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.0.get(&Self::key(client))?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns the failures in the window and whether to
    /// log this one (once per address per window).
    fn record(&mut self, client: IpAddr, now: Instant) -> (u32, bool) {
        let key = Self::key(client);
        if !self.0.contains_key(&key) && self.0.len() >= MAX_TRACKED_ADDRESSES {
            self.evict(now);
        }
        let s = self.0.entry(key).or_insert(FailureState {
            count: 0,
            since: now,
            last: now,
            blocked_until: None,
            logged: None,
        });
        if now.saturating_duration_since(s.since) > FAILURE_WINDOW {
            s.count = 0;
            s.since = now;
        }
        s.count += 1;
        s.last = now;
        if s.count > FREE_FAILURES {
            let doublings = (s.count - FREE_FAILURES - 1).min(6);
            s.blocked_until = Some(now + Duration::from_secs(1 << doublings).min(MAX_BLOCK));
        }
        let log = s
            .logged
            .is_none_or(|t| now.saturating_duration_since(t) >= FAILURE_WINDOW);
        if log {
            s.logged = Some(now);
        }
        (s.count, log)
    }

    /// A successful login wipes the address's count and wait. When its last
    /// failure was logged is kept, so that a viewer logging in between an
    /// attacker's guesses from the same address (one NAT) does not let them
    /// write more than one line a minute.
    fn forget(&mut self, client: IpAddr, now: Instant) {
        let key = Self::key(client);
        let Some(s) = self.0.get_mut(&key) else {
            return;
        };
        if s.logged
            .is_some_and(|t| now.saturating_duration_since(t) < FAILURE_WINDOW)
        {
            s.count = 0;
            s.since = now;
            s.blocked_until = None;
        } else {
            self.0.remove(&key);
        }
    }

    /// Makes room: drops what has expired, else the address that failed
    /// longest ago.
    fn evict(&mut self, now: Instant) {
        self.0.retain(|_, s| {
            now.saturating_duration_since(s.last) <= FAILURE_WINDOW
                || s.blocked_until.is_some_and(|t| t > now)
        });
        if self.0.len() >= MAX_TRACKED_ADDRESSES
            && let Some(oldest) = self.0.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k)
        {
            self.0.remove(&oldest);
        }
    }
}

/// MD5("name:realm:password"), what a user's `ha1` holds.
pub fn ha1(name: &str, realm: &str, password: &str) -> Ha1 {
    Md5::new()
        .chain_update(name)
        .chain_update(":")
        .chain_update(realm)
        .chain_update(":")
        .chain_update(password)
        .finalize()
        .into()
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    to_hex(&h.finalize())
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(hex: &str) -> Option<Ha1> {
    let mut out = [0u8; 16];
    if hex.len() != 32 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Compares in time that does not depend on where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A user name as the log shows it: at most [`LOGGED_NAME_CHARS`].
fn shorten(name: &str) -> String {
    name.chars().take(LOGGED_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
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
    fn rfc_2617_example_response() {
        // RFC 2617 section 3.5: Mufasa / "Circle Of Life".
        let ha1 = to_hex(&ha1("Mufasa", "testrealm@host.com", "Circle Of Life"));
        let ha2 = md5_hex(&["GET:/dir/index.html"]);
        let r = md5_hex(&[
            &ha1,
            ":dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:",
            &ha2,
        ]);
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
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
    fn failures_are_logged_once_a_window_even_with_successes_between() {
        let mut f = Failures::default();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(f.record(client, t0), (1, true));
        f.forget(client, t0 + Duration::from_secs(1));
        assert_eq!(
            f.record(client, t0 + Duration::from_secs(2)),
            (1, false),
            "counted afresh, not logged again"
        );
        assert!(f.blocked(client, t0 + Duration::from_secs(2)).is_none());
        let later = t0 + FAILURE_WINDOW + Duration::from_secs(3);
        f.forget(client, later);
        assert!(f.0.is_empty(), "nothing kept once the window is over");
        assert_eq!(f.record(client, later), (1, true));
    }

    #[test]
    fn failure_memory_is_bounded_and_ipv6_counts_by_prefix() {
        let mut f = Failures::default();
        let now = Instant::now();
        for i in 0..MAX_TRACKED_ADDRESSES as u32 + 100 {
            f.record(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()), now);
        }
        assert!(f.0.len() <= MAX_TRACKED_ADDRESSES);
        let mut f = Failures::default();
        for host in 1..=FREE_FAILURES + 1 {
            f.record(format!("2001:db8::{host}").parse().unwrap(), now);
        }
        assert!(f.blocked("2001:db8::99".parse().unwrap(), now).is_some());
        assert!(f.blocked("2001:db8:0:1::1".parse().unwrap(), now).is_none());
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
