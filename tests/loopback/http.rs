//! The HTTP side with real clients: curl for the pages, Prometheus'
//! promtool for the metrics, ffmpeg as the viewer the metrics follow.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Source};

/// The status code, headers and body curl got for `url`, with `args`.
pub fn curl(url: &str, args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "/dev/stderr", "-o", "-"])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("running curl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let headers = String::from_utf8_lossy(&out.stderr).to_string();
    (code.trim().parse().unwrap_or(0), headers, body.to_string())
}

/// Checks `text` with `promtool check metrics` (PROMTOOL names it; CI
/// unpacks Debian's).
pub fn promtool_check(text: &str) {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {promtool} (set PROMTOOL): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

/// The value of sample `name` (with its labels, if any) in a metrics page.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// Fetches /metrics until `wanted` holds, for at most 15 s; returns the
/// last page.
fn metrics_until(d: &Daemon, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, _, page) = curl(&d.http_url("/metrics"), &[]);
        assert_eq!(code, 200, "{page}");
        if wanted(&page) || Instant::now() > deadline {
            return page;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// ffmpeg playing the stream over `transport`, discarding what it gets.
fn viewer(d: &Daemon, transport: &str) -> Child {
    Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-i",
        ])
        .arg(d.url())
        .args(["-t", "60", "-c", "copy", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ffmpeg")
}

#[test]
fn metrics_pass_promtool_and_follow_the_clients() {
    let d = Daemon::start(Source::File);
    let before = metrics_until(&d, |p| sample(p, "streamcam_frames_total") > 0.0);
    promtool_check(&before);
    assert_eq!(sample(&before, "streamcam_streaming"), 1.0, "{before}");
    assert_eq!(sample(&before, "streamcam_clients{transport=\"tcp\"}"), 0.0);
    assert!(
        sample(&before, "process_resident_memory_bytes") > 1e6,
        "{before}"
    );
    assert!(sample(&before, "process_open_fds") >= 3.0, "{before}");

    let mut tcp = viewer(&d, "tcp");
    let mut udp = viewer(&d, "udp");
    let playing = metrics_until(&d, |p| {
        sample(p, "streamcam_clients{transport=\"tcp\"}") == 1.0
            && sample(p, "streamcam_clients{transport=\"udp\"}") == 1.0
            && sample(p, "streamcam_playing_clients") == 2.0
            && sample(p, "streamcam_sent_packets_total") > 0.0
    });
    promtool_check(&playing);
    assert_eq!(
        sample(&playing, "streamcam_playing_clients"),
        2.0,
        "{playing}"
    );
    let sent = sample(&playing, "streamcam_sent_packets_total");
    assert!(sent > 0.0, "{playing}");

    let _ = tcp.kill();
    let _ = udp.kill();
    let _ = tcp.wait();
    let _ = udp.wait();
    // The TCP session ends with its connection; the UDP one when its
    // client is silent for the session timeout, or its RTCP stops: wait
    // for the TCP one, and for nothing to be counted as playing over TCP.
    let after = metrics_until(&d, |p| {
        sample(p, "streamcam_clients{transport=\"tcp\"}") == 0.0
    });
    promtool_check(&after);
    assert_eq!(
        sample(&after, "streamcam_clients{transport=\"tcp\"}"),
        0.0,
        "{after}"
    );
    assert!(sample(&after, "streamcam_sessions_total") >= 2.0, "{after}");
    assert!(
        sample(&after, "streamcam_sent_packets_total") >= sent,
        "{after}"
    );
    assert!(
        sample(&after, "streamcam_frames_total") > sample(&before, "streamcam_frames_total"),
        "{after}"
    );
}

#[test]
fn status_page_names_the_stream_and_where_to_watch_it() {
    let d = Daemon::start(Source::File);
    let (code, headers, page) = curl(&d.http_url("/"), &[]);
    assert_eq!(code, 200, "{headers}{page}");
    assert!(
        headers.to_lowercase().contains("content-type: text/html"),
        "{headers}"
    );
    assert!(
        page.contains(&d.url()),
        "the RTSP URL {} is not on the page:\n{page}",
        d.url()
    );
    assert!(page.contains("Streaming 1280x720@30 h264"), "{page}");
    // Nothing is fetched from elsewhere.
    assert!(!page.contains("src=\"http"), "{page}");
    // HEAD: the headers only; other methods and paths are refused.
    let (code, _, out) = curl(&d.http_url("/"), &["-I"]);
    assert_eq!(code, 200, "{out}");
    assert!(!out.contains("<html"), "HEAD sent a body: {out}");
    let (code, headers, _) = curl(&d.http_url("/"), &["-X", "POST"]);
    assert_eq!(code, 405, "{headers}");
    assert!(
        headers.to_lowercase().contains("allow: get, head"),
        "{headers}"
    );
    let (code, _, _) = curl(&d.http_url("/nothing-here"), &[]);
    assert_eq!(code, 404);
    // A Host header with markup in it is not echoed.
    let (code, _, page) = curl(&d.http_url("/"), &["-H", "Host: <b>x</b>"]);
    assert_eq!(code, 200);
    assert!(!page.contains("<b>x</b>"), "{page}");
}

#[test]
fn every_http_page_needs_the_password() {
    let d = Daemon::start_with("127.0.0.1", Source::File, &crate::auth::users(false));
    for path in ["/", "/metrics", "/nothing-here"] {
        let (code, headers, _) = curl(&d.http_url(path), &[]);
        assert_eq!(code, 401, "{path}: {headers}");
        assert!(
            headers
                .to_lowercase()
                .contains("www-authenticate: digest realm=\"streamcam\""),
            "{path}: {headers}"
        );
        let (code, _, _) = curl(&d.http_url(path), &["--digest", "-u", "viewer:wrong"]);
        assert_eq!(code, 401, "{path} with a wrong password");
    }
    let (code, _, page) = curl(&d.http_url("/"), &["--digest", "-u", "viewer:secret"]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains(&d.url()), "{page}");
    let (code, _, page) = curl(
        &d.http_url("/metrics"),
        &["--digest", "-u", "admin:hunter2"],
    );
    assert_eq!(code, 200, "{page}");
    promtool_check(&page);
    assert!(
        sample(&page, "streamcam_auth_failures_total") >= 3.0,
        "{page}"
    );
    let (code, _, _) = curl(
        &d.http_url("/nothing-here"),
        &["--digest", "-u", "viewer:secret"],
    );
    assert_eq!(code, 404);
    // Basic is refused on plain HTTP, as on plain RTSP.
    let (code, _, _) = curl(&d.http_url("/"), &["--basic", "-u", "viewer:secret"]);
    assert_eq!(code, 401);
}

#[test]
fn silent_and_slow_http_connections_are_closed_and_never_block_others() {
    use std::io::Read;
    let d = Daemon::start(Source::File);
    let addr = format!("127.0.0.1:{}", d.http_port);
    let silent = std::net::TcpStream::connect(&addr).unwrap();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    let opened = Instant::now();
    // Others are answered meanwhile.
    let (code, _, page) = curl(&d.http_url("/metrics"), &[]);
    assert_eq!(code, 200, "{page}");
    for (name, mut c) in [("silent", silent), ("slow", slow)] {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 256];
        let n = c
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{name}: not closed: {e}"));
        let after = opened.elapsed();
        assert!(
            n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
            "{name}: got {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        assert!(
            after >= Duration::from_secs(9) && after < Duration::from_secs(15),
            "{name}: closed after {after:?} (the header timeout is 10 s)"
        );
    }
}
