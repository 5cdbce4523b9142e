//! The status page's live picture in a real browser: headless Chromium
//! driven by puppeteer-core (`tests/browser/watch.mjs`), plus bare
//! WebSocket clients for what a browser never does (not reading, vanishing,
//! forged tokens).
//!
//! Run by the `browser` tier (ci/browser), which installs Chromium and
//! puppeteer-core and sets BROWSER_TOOLS; screenshots go to
//! `target/browser-screenshots/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::auth::users;
use crate::clients::{self, Mode};
use crate::daemon::{Daemon, Source};
use crate::http::{curl, sample};

/// What `watch.mjs` saw of the page.
#[derive(Debug)]
struct Watched {
    json: String,
}

impl Watched {
    /// A number at `path` ("last.width") in the report.
    fn number(&self, path: &str) -> f64 {
        let mut rest = self.json.as_str();
        for key in path.split('.') {
            let at = rest
                .find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("no {path} in {}", self.json));
            rest = &rest[at + key.len() + 3..];
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        rest[..end]
            .parse()
            .unwrap_or_else(|_| panic!("{path} is not a number in {}", self.json))
    }

    /// How the page played the picture: "mse" or "webrtc".
    fn transport(&self) -> &str {
        let at = self.json.find("\"transport\":\"").map(|i| i + 13);
        at.and_then(|i| self.json[i..].split('"').next())
            .unwrap_or("none")
    }

    /// Asserts that the picture played, live, at 1280x720, for most of
    /// `seconds`.
    fn assert_played(&self, seconds: f64) {
        assert!(!self.json.contains("\"error\""), "{}", self.json);
        assert_eq!(self.number("status"), 200.0, "{}", self.json);
        assert_eq!(
            (self.number("last.width"), self.number("last.height")),
            (1280.0, 720.0),
            "{}",
            self.json
        );
        let played = self.number("last.time") - self.number("first.time");
        assert!(
            played > seconds * 0.7,
            "the video played {played:.2} s in {seconds} s: {}",
            self.json
        );
        assert_ne!(
            self.number("first.hash"),
            self.number("last.hash"),
            "the picture did not change: {}",
            self.json
        );
        // MSE's own buffer (WebRTC keeps its jitter buffer to itself).
        if self.transport() == "mse" {
            let behind = self.number("last.buffered");
            assert!(
                (0.0..1.0).contains(&behind),
                "{behind:.2} s behind the newest picture: {}",
                self.json
            );
        }
    }

    /// Asserts that the first picture showed within a second of opening
    /// the page (a source whose key frames can be forced).
    fn assert_quick_start(&self) {
        let first_frame = self.number("firstFrameMs");
        assert!(
            first_frame < 1000.0,
            "first frame {first_frame} ms after the page was opened"
        );
    }
}

/// Opens `url` in headless Chromium for `seconds`, as `user` if given;
/// keeps a screenshot named `name`.
fn watch(url: &str, name: &str, seconds: u32, user: Option<(&str, &str)>) -> Watched {
    watch_with(url, name, seconds, user, "")
}

/// [`watch`], with requests to URLs containing `block` failing.
fn watch_with(
    url: &str,
    name: &str,
    seconds: u32,
    user: Option<(&str, &str)>,
    block: &str,
) -> Watched {
    let tools = std::env::var("BROWSER_TOOLS")
        .expect("BROWSER_TOOLS must name puppeteer-core's node_modules: run `ci/test browser`");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join(format!("{name}.png"));
    let mut cmd = Command::new("node");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/watch.mjs"
    ))
    .arg(url)
    .arg(&shot)
    .arg(seconds.to_string())
    .env("BROWSER_TOOLS", tools)
    .env("WATCH_BLOCK", block);
    if let Some((name, password)) = user {
        cmd.env("WATCH_USER", name).env("WATCH_PASSWORD", password);
    }
    let out = cmd.output().expect("running node");
    let json = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && json.starts_with('{'),
        "watch.mjs: {json}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("screenshot of the page: {}\n{json}", shot.display());
    Watched { json }
}

/// A bare WebSocket client: sends the upgrade for `target` and returns the
/// socket and the status code. `receive_buffer` shrinks the socket's
/// receive buffer first (a viewer that reads slowly fills it at once).
fn websocket(addr: SocketAddr, target: &str, receive_buffer: Option<usize>) -> (TcpStream, u16) {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if code == 101 {
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "wrong accept key: {head}"
        );
    }
    (stream, code)
}

#[test]
fn the_page_plays_the_live_picture_by_mse() {
    let d = Daemon::start(Source::TestPattern);
    let watched = watch(&d.http_url("/?live=mse"), "live-picture", 4, None);
    assert_eq!(watched.transport(), "mse", "{}", watched.json);
    watched.assert_played(4.0);
    watched.assert_quick_start();
    let line = d
        .wait_for_log("browser viewer ended", Duration::from_secs(5))
        .expect("the viewer's end is logged");
    assert!(line.contains("viewer left"), "{line}");
}

#[test]
fn with_passwords_the_page_and_its_picture_need_them() {
    let d = Daemon::start_with("127.0.0.1", Source::TestPattern, &users(false));
    watch(
        &d.http_url("/"),
        "live-picture-with-password",
        3,
        Some(("viewer", "secret")),
    )
    .assert_played(3.0);

    // Without a password Chromium gets nothing to show (it reports the
    // 401 as a navigation error).
    let refused = watch(&d.http_url("/"), "refused-without-password", 1, None);
    assert!(
        refused.json.contains("ERR_INVALID_AUTH_CREDENTIALS")
            || refused.json.contains("\"status\":401"),
        "{}",
        refused.json
    );
    assert!(!refused.json.contains("\"width\""), "{}", refused.json);

    // The socket itself: no token, a forged or altered one, and the one
    // the page carries.
    let addr = d.http_addr();
    assert_eq!(websocket(addr, "/stream.ws", None).1, 401);
    assert_eq!(websocket(addr, "/stream.ws?token=99999.00ff", None).1, 401);
    let (_, _, page) = curl(&d.http_url("/"), &["--digest", "--user", "viewer:secret"]);
    let token = page
        .split("data-token=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("the page carries a token");
    let (expires, tag) = token.split_once('.').unwrap();
    let altered = format!("{}.{tag}", expires.parse::<u64>().unwrap() + 1);
    assert_eq!(
        websocket(addr, &format!("/stream.ws?token={altered}"), None).1,
        401
    );
    assert_eq!(
        websocket(addr, &format!("/stream.ws?token={token}"), None).1,
        101
    );
}

#[test]
fn over_https_the_page_plays_by_secure_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}{}",
        crate::tls::tls_table(&dir.path().join("tls")),
        users(false)
    );
    let d = Daemon::start_with("127.0.0.1", Source::TestPattern, &extra);
    let https = d.http_url("/").replace("http://", "https://");
    watch(
        &https,
        "live-picture-over-https",
        3,
        Some(("viewer", "secret")),
    )
    .assert_played(3.0);
}

#[test]
fn slow_and_vanished_viewers_hurt_no_one() {
    // A recorded stream: every frame is the daemon's to deliver (a software
    // encode beside Chromium on a busy machine may drop some itself).
    let d = Daemon::start(Source::File);
    let addr = d.http_addr();
    // One that never reads, one that goes without a word.
    let (_slow, code) = websocket(addr, "/stream.ws", Some(4096));
    assert_eq!(code, 101);
    let (gone, code) = websocket(addr, "/stream.ws", None);
    assert_eq!(code, 101);
    let metrics = |d: &Daemon| curl(&d.http_url("/metrics"), &[]).2;
    assert_eq!(
        sample(&metrics(&d), "streamcam_clients{transport=\"websocket\"}"),
        2.0
    );
    drop(gone);

    // Meanwhile an RTSP client and a browser get every frame.
    let url = d.url();
    let rtsp = std::thread::spawn(move || clients::ffmpeg(&url, "tcp", 240, Mode::Decode));
    let watched = watch(
        &d.http_url("/?live=mse"),
        "live-picture-beside-a-slow-viewer",
        6,
        None,
    );
    assert_eq!(watched.transport(), "mse", "{}", watched.json);
    watched.assert_played(6.0);
    rtsp.join()
        .unwrap()
        .assert_clean("ffmpeg/tcp beside the slow viewer", 240);

    let ended = |why: &str| {
        d.wait_for_log(why, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("no line with {why:?} in:\n{}", d.log()))
    };
    ended("took more than 5s to read");
    // The slow one, the vanished one and the browser.
    for _ in 0..100 {
        if d.log().matches("browser viewer ended").count() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        d.log().matches("browser viewer ended").count(),
        3,
        "{}",
        d.log()
    );
    assert_eq!(
        sample(&metrics(&d), "streamcam_clients{transport=\"websocket\"}"),
        0.0
    );
}

/// WebRTC needs an address other than loopback: the browser tier runs in a
/// network namespace of its own with one (BROWSER_HOST).
#[cfg(feature = "webrtc")]
#[test]
fn the_page_plays_by_webrtc_where_it_can() {
    let host = std::env::var("BROWSER_HOST").expect(
        "BROWSER_HOST must name a non-loopback address of this network namespace: run `ci/test browser`",
    );
    let d = Daemon::start_with(&host, Source::TestPattern, "");
    let watched = watch(&d.http_url("/"), "live-picture-by-webrtc", 4, None);
    assert_eq!(watched.transport(), "webrtc", "{}", watched.json);
    watched.assert_played(4.0);
    let metrics = curl(&d.http_url("/metrics"), &[]).2;
    assert!(
        sample(&metrics, "streamcam_frames_total") > 0.0,
        "{metrics}"
    );
    let line = d
        .wait_for_log("WebRTC viewer ended", Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no end line:\n{}", d.log()));
    assert!(line.contains("frames="), "{line}");
    assert_eq!(
        sample(
            &curl(&d.http_url("/metrics"), &[]).2,
            "streamcam_clients{transport=\"webrtc\"}"
        ),
        0.0
    );
}

/// A page whose WHEP request fails (a proxy refuses it) still gets the
/// picture, over the WebSocket.
#[cfg(feature = "webrtc")]
#[test]
fn the_page_falls_back_to_mse_when_webrtc_fails() {
    let host = std::env::var("BROWSER_HOST").expect("BROWSER_HOST: run `ci/test browser`");
    let d = Daemon::start_with(&host, Source::TestPattern, "");
    let watched = watch_with(
        &d.http_url("/"),
        "live-picture-after-webrtc-failed",
        3,
        None,
        "/stream/whep",
    );
    assert_eq!(watched.transport(), "mse", "{}", watched.json);
    watched.assert_played(3.0);
}
