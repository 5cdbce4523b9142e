//! MD5 as Digest uses it: a user's `ha1`, hashes in hex, and a comparison
//! in constant time.

use md5::{Digest as _, Md5};

/// MD5("name:realm:password").
pub(super) type Ha1 = [u8; 16];

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

/// Lower-case hex of the MD5 of `parts` one after the other.
pub(super) fn md5_hex(parts: &[&str]) -> String {
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

/// The 16 bytes a 32-digit hex `ha1` holds.
pub(super) fn parse_hex(hex: &str) -> Option<Ha1> {
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
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
