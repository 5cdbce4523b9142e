//! `[auth]`: who may watch.

use std::fmt;

use serde::Deserialize;

use super::check::header_safe;

/// `[auth]` section: with no users, the stream is open to anyone who can
/// reach the port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The realm clients are challenged with; a user's `ha1` depends on it.
    pub realm: String,
    /// Accept Basic authentication (the password in clear) on plain RTSP.
    pub basic: bool,
    /// `[[auth.users]]`: who may watch.
    pub users: Vec<UserConfig>,
}

/// The default realm.
pub const DEFAULT_REALM: &str = "streamcam";

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            realm: DEFAULT_REALM.into(),
            basic: false,
            users: Vec::new(),
        }
    }
}

/// One `[[auth.users]]` entry: a name and either its password or its
/// `ha1` (MD5 of "name:realm:password" in hex, from `streamcam
/// hash-password`).
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    /// The user name.
    pub name: String,
    /// The password, in clear.
    pub password: Option<String>,
    /// MD5("name:realm:password") as 32 hex digits.
    pub ha1: Option<String>,
}

/// Never shows a password or `ha1`.
impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("ha1", &self.ha1.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl AuthConfig {
    /// Checks the realm and users; on error returns the dotted key
    /// (`auth.users[1].ha1`) and a message.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if !header_safe(&self.realm) {
            return Err((
                "auth.realm".into(),
                format!(
                    "{:?} must be printable text without '\"', '\\' or ':'",
                    self.realm
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            let key = |k: &str| format!("auth.users[{i}].{k}");
            if !header_safe(&user.name) {
                return Err((
                    key("name"),
                    format!(
                        "{:?} must be printable text without '\"', '\\' or ':'",
                        user.name
                    ),
                ));
            }
            if !seen.insert(user.name.as_str()) {
                return Err((key("name"), format!("{:?} is listed twice", user.name)));
            }
            match (&user.password, &user.ha1) {
                (Some(_), Some(_)) => {
                    return Err((key("ha1"), "give either password or ha1, not both".into()));
                }
                (None, None) => {
                    return Err((
                        key("password"),
                        format!(
                            "user {:?} needs a password (or an ha1 from `streamcam hash-password`)",
                            user.name
                        ),
                    ));
                }
                (Some(p), None) if p.is_empty() => {
                    return Err((key("password"), "must not be empty".into()));
                }
                (None, Some(h)) if h.len() != 32 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    return Err((
                        key("ha1"),
                        "must be 32 hex digits: MD5(name:realm:password), as `streamcam hash-password NAME` prints"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parse;

    #[test]
    fn auth_users() {
        let c = parse(
            "[auth]\nrealm = \"garden\"\n[[auth.users]]\nname = \"viewer\"\npassword = \"secret\"\n\
             [[auth.users]]\nname = \"admin\"\nha1 = \"0123456789abcdef0123456789ABCDEF\"\n",
        )
        .unwrap();
        assert_eq!(c.auth.realm, "garden");
        assert!(!c.auth.basic);
        assert_eq!(c.auth.users.len(), 2);
        let shown = format!("{:?}", c.auth);
        assert!(
            !shown.contains("secret") && !shown.contains("0123"),
            "{shown}"
        );
        assert_eq!(parse("").unwrap().auth.realm, DEFAULT_REALM);
        let user = |body: &str| {
            format!(
                "[auth]\n[[auth.users]]\nname = \"a\"\npassword = \"p\"\n[[auth.users]]\n{body}"
            )
        };
        let cases = [
            (
                user("name = \"\"\npassword = \"x\"\n"),
                "auth.users[1].name",
                6,
            ),
            (
                user("name = \"a\"\npassword = \"x\"\n"),
                "auth.users[1].name",
                6,
            ),
            (
                user("name = \"b:c\"\npassword = \"x\"\n"),
                "auth.users[1].name",
                6,
            ),
            (
                user("name = \"b\"\nha1 = \"abc\"\n"),
                "auth.users[1].ha1",
                7,
            ),
            (
                user("name = \"b\"\nha1 = \"zz23456789abcdef0123456789abcdef\"\n"),
                "auth.users[1].ha1",
                7,
            ),
            (
                user(
                    "name = \"b\"\npassword = \"x\"\nha1 = \"0123456789abcdef0123456789abcdef\"\n",
                ),
                "auth.users[1].ha1",
                8,
            ),
            (user("name = \"b\"\n"), "auth.users[1].password", 5),
            (
                user("name = \"b\"\npassword = \"\"\n"),
                "auth.users[1].password",
                7,
            ),
            ("[auth]\nrealm = \"a\\\"b\"\n".to_string(), "auth.realm", 2),
        ];
        for (text, key, line) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
        }
    }
}
