//! Authentication with the real clients (credentials in the URL, as Home
//! Assistant and Frigate take them) and with a bare client for the rules
//! no real client breaks: stale and replayed nonces, Basic on plain RTSP,
//! throttling of failed attempts.

use std::process::{Command, Stdio};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::clients::{self, Mode};
use crate::daemon::{Daemon, Source};
use crate::raw::{RawClient, Response};

/// `[auth]` with one user given by password and one by the `ha1` that
/// `streamcam hash-password` printed.
pub fn users(basic: bool) -> String {
    let mut child = crate::daemon::streamcam_command()
        .args(["hash-password", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let entry = String::from_utf8(out.stdout).unwrap();
    assert!(entry.contains("ha1 = \""), "{entry}");
    assert!(!entry.contains("hunter2"));
    format!(
        "[auth]\nbasic = {basic}\n[[auth.users]]\nname = \"viewer\"\npassword = \"secret\"\n{entry}"
    )
}

/// The URL with `user:password@` in it.
fn with_credentials(d: &Daemon, user: &str, password: &str) -> String {
    d.url()
        .replace("rtsp://", &format!("rtsp://{user}:{password}@"))
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A challenge's parameter.
fn param(challenge: &str, name: &str) -> Option<String> {
    let (_, rest) = challenge.split_once(&format!("{name}="))?;
    Some(
        rest.trim_start_matches('"')
            .split(['"', ','])
            .next()?
            .to_string(),
    )
}

/// All `WWW-Authenticate` headers of a reply.
fn challenges(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect()
}

/// An `Authorization: Digest` value, with `qop=auth` and `nc` or without.
fn digest(
    method: &str,
    url: &str,
    user: &str,
    password: &str,
    nonce: &str,
    nc: Option<u32>,
) -> String {
    let ha1 = md5_hex(&format!("{user}:streamcam:{password}"));
    let ha2 = md5_hex(&format!("{method}:{url}"));
    match nc {
        Some(nc) => {
            let response = md5_hex(&format!("{ha1}:{nonce}:{nc:08x}:c0ffee:auth:{ha2}"));
            format!(
                "Digest username=\"{user}\", realm=\"streamcam\", nonce=\"{nonce}\", uri=\"{url}\", \
                 response=\"{response}\", qop=auth, nc={nc:08x}, cnonce=\"c0ffee\""
            )
        }
        None => {
            let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
            format!(
                "Digest username=\"{user}\", realm=\"streamcam\", nonce=\"{nonce}\", uri=\"{url}\", response=\"{response}\""
            )
        }
    }
}

#[test]
fn real_clients_play_with_the_right_password_and_are_refused_with_a_wrong_one() {
    let d = Daemon::start_with("127.0.0.1", Source::File, &users(false));
    assert!(d.log().contains("authentication: 2 user(s)"), "{}", d.log());

    let (probe, err) = clients::ffprobe(&with_credentials(&d, "viewer", "secret"), "tcp");
    assert!(
        probe.contains("codec_name=h264") && probe.contains("width=1280"),
        "{probe}\n{err}"
    );
    let (probe, err) = clients::ffprobe(&with_credentials(&d, "admin", "hunter2"), "udp");
    assert!(
        probe.contains("codec_name=h264"),
        "ha1 user: {probe}\n{err}"
    );

    // A viewer watches while others try wrong passwords: it never notices.
    let witness = {
        let url = with_credentials(&d, "viewer", "secret");
        std::thread::spawn(move || clients::ffmpeg(&url, "udp", 150, Mode::Receive))
    };
    for (user, password) in [("viewer", "wrongpass"), ("nobody", "secret")] {
        let (probe, err) = clients::ffprobe(&with_credentials(&d, user, password), "tcp");
        assert!(
            !probe.contains("codec_name"),
            "{user}: media without the password"
        );
        assert!(err.contains("401"), "{user}: {err}");
    }
    let (probe, err) = clients::ffprobe(&d.url(), "tcp");
    assert!(
        err.contains("401") && probe.is_empty(),
        "no credentials: {err}"
    );

    witness.join().unwrap().assert_clean("witness", 150);
    let good = with_credentials(&d, "viewer", "secret");
    clients::ffmpeg(&good, "udp", 60, Mode::Receive).assert_clean("ffmpeg udp", 60);
    clients::gstreamer(&good, "tcp", 60, Mode::Receive).assert_clean("gstreamer tcp", 60);
    clients::gstreamer(
        &with_credentials(&d, "admin", "hunter2"),
        "udp",
        60,
        Mode::Receive,
    )
    .assert_clean("gstreamer udp", 60);
    crate::retina_client::play(&good, "tcp", 60, Mode::Receive)
        .decoded
        .assert_clean("retina tcp", 60);

    let log = d.log();
    assert!(
        log.contains("authentication failed for user \"viewer\"") && log.contains("wrong password"),
        "{log}"
    );
    assert_eq!(
        log.matches("authentication failed").count(),
        1,
        "once a minute per address:\n{log}"
    );
    for secret in ["wrongpass", "secret\"", "hunter2"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

#[test]
fn gstreamer_takes_user_id_and_user_pw() {
    let d = Daemon::start_with("127.0.0.1", Source::File, &users(false));
    let run = |password: &str| {
        Command::new("timeout")
            .args([
                "30",
                "gst-launch-1.0",
                "-q",
                "rtspsrc",
                &format!("location={}", d.url()),
            ])
            .args(["user-id=viewer", &format!("user-pw={password}")])
            .args(["protocols=tcp", "!", "rtph264depay", "!", "h264parse"])
            .args(["!", "identity", "eos-after=30", "!", "fakesink"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let ok = run("secret");
    assert!(
        ok.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&ok.stderr),
        d.log()
    );
    let refused = run("wrong");
    let text = String::from_utf8_lossy(&refused.stdout).to_string()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{text}");
    // rtspsrc retries a refused password until the address is throttled.
    assert!(
        text.contains("Unauthorized (401)") || text.contains("Service Unavailable (503)"),
        "{text}"
    );
    assert_eq!(d.log().matches("session started").count(), 1, "{}", d.log());
}

#[test]
fn digest_rules_stale_nonces_basic_and_throttling() {
    let d = Daemon::start_with("127.0.0.1", Source::File, &users(false));
    let url = d.url();
    let mut c = RawClient::connect(&d);
    assert_eq!(
        c.request("OPTIONS", &url, &[]).status,
        200,
        "OPTIONS is open"
    );

    let r = c.request("DESCRIBE", &url, &[]);
    assert_eq!(r.status, 401);
    let offered = challenges(&r);
    assert_eq!(offered.len(), 1, "Digest only on plain RTSP: {offered:?}");
    assert!(
        offered[0].starts_with("Digest realm=\"streamcam\", nonce=\""),
        "{offered:?}"
    );
    assert!(offered[0].contains("qop=\"auth\""), "{offered:?}");
    let nonce = param(offered[0], "nonce").unwrap();

    // RFC 2617 with qop, then RFC 2069 without, on the same nonce.
    let h = digest("DESCRIBE", &url, "viewer", "secret", &nonce, Some(1));
    let r = c.request("DESCRIBE", &url, &[("Authorization", &h)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("m=video"));
    let h = digest("DESCRIBE", &url, "viewer", "secret", &nonce, None);
    assert_eq!(
        c.request("DESCRIBE", &url, &[("Authorization", &h)]).status,
        200
    );

    // A replayed nc, and a nonce the server never gave: stale, fresh nonce.
    let h = digest("DESCRIBE", &url, "viewer", "secret", &nonce, Some(1));
    let r = c.request("DESCRIBE", &url, &[("Authorization", &h)]);
    assert_eq!(r.status, 401);
    assert_eq!(param(challenges(&r)[0], "stale").as_deref(), Some("true"));
    assert_ne!(param(challenges(&r)[0], "nonce").unwrap(), nonce);
    let h = digest("DESCRIBE", &url, "viewer", "secret", "feedface", None);
    let r = c.request("DESCRIBE", &url, &[("Authorization", &h)]);
    assert_eq!(param(challenges(&r)[0], "stale").as_deref(), Some("true"));

    // A SETUP of the track signed for the stream's base URL, as live555
    // (openRTSP, VLC) signs it: the same stream, let in.
    let base = format!("{url}/");
    let h = digest("SETUP", &base, "viewer", "secret", &nonce, Some(3));
    let track = format!("{url}/trackID=0");
    let r = c.request(
        "SETUP",
        &track,
        &[
            ("Authorization", &h),
            ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),
        ],
    );
    assert_eq!(r.status, 200, "live555's SETUP: {r:?}");

    // Digest for another URL, and Basic on plain RTSP.
    let h = digest(
        "DESCRIBE",
        &url.replace("/stream", "/x"),
        "viewer",
        "secret",
        &nonce,
        Some(2),
    );
    assert_eq!(
        c.request("DESCRIBE", &url, &[("Authorization", &h)]).status,
        401
    );
    let basic = "Basic dmlld2VyOnNlY3JldA=="; // viewer:secret
    assert_eq!(
        c.request("DESCRIBE", &url, &[("Authorization", basic)])
            .status,
        401
    );

    // Failed attempts from one address: after a few, the address waits,
    // even with the right password; a success afterwards resets it.
    let mut throttled = None;
    for n in 0..10 {
        let h = digest("DESCRIBE", &url, "viewer", "guess", &nonce, Some(100 + n));
        let r = c.request("DESCRIBE", &url, &[("Authorization", &h)]);
        if r.status == 503 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status, 401);
    }
    let r = throttled.expect("never throttled");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{r:?}");
    std::thread::sleep(Duration::from_secs(wait));
    let r = c.request("DESCRIBE", &url, &[]);
    let nonce = param(challenges(&r)[0], "nonce").unwrap();
    let h = digest("DESCRIBE", &url, "viewer", "secret", &nonce, Some(1));
    assert_eq!(
        c.request("DESCRIBE", &url, &[("Authorization", &h)]).status,
        200
    );
    // Credentials a client puts in the request URL stay out of the log.
    let leaky = url.replace("rtsp://", "rtsp://viewer:topsecret@");
    assert_eq!(c.request("DESCRIBE", &leaky, &[]).status, 401);
    let log = d.log();
    assert!(!log.contains("topsecret"), "{log}");
    let logged = log.matches("authentication failed for user").count();
    assert_eq!(logged, 1, "one line per address per minute:\n{log}");
}

#[test]
fn basic_when_allowed_and_nothing_needed_without_users() {
    let d = Daemon::start_with("127.0.0.1", Source::File, &users(true));
    let url = d.url();
    let mut c = RawClient::connect(&d);
    let r = c.request("DESCRIBE", &url, &[]);
    let offered = challenges(&r);
    assert_eq!(offered.len(), 2, "{offered:?}");
    assert!(
        offered[0].starts_with("Digest ") && offered[1].starts_with("Basic realm=\"streamcam\"")
    );
    let basic = "Basic dmlld2VyOnNlY3JldA=="; // viewer:secret
    assert_eq!(
        c.request("DESCRIBE", &url, &[("Authorization", basic)])
            .status,
        200
    );
    let (probe, err) = clients::ffprobe(&with_credentials(&d, "viewer", "secret"), "tcp");
    assert!(probe.contains("codec_name=h264"), "{probe}\n{err}");

    let open = Daemon::start(Source::File);
    assert!(
        open.log().contains("anyone who can reach"),
        "{}",
        open.log()
    );
    let mut c = RawClient::connect(&open);
    assert_eq!(c.request("DESCRIBE", &open.url(), &[]).status, 200);
}
