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
    assert_eq!(
        sample(&before, "streamcam_encoder_zero_copy"),
        0.0,
        "{before}"
    );
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
    assert!(
        sample(&after, "streamcam_encoded_bytes_total") > 0.0,
        "{after}"
    );
    // Every frame sent out was captured; nothing failed.
    assert!(
        sample(&after, "streamcam_frames_captured_total")
            >= sample(&after, "streamcam_frames_total"),
        "{after}"
    );
    assert_eq!(
        sample(&after, "streamcam_pipeline_failures_total{part=\"source\"}"),
        0.0,
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
    // The file is H.264 already: nothing is encoded, so nothing is copied.
    assert!(
        page.contains("<th>Frames into the encoder</th><td>none encoded here</td>"),
        "{page}"
    );
    // The bit rate, once a window of it has passed (the file is 1 Mbit/s
    // or so).
    std::thread::sleep(Duration::from_millis(2500));
    let (_, _, later) = curl(&d.http_url("/"), &[]);
    let rate = later
        .split("<th>Bit rate</th><td>")
        .nth(1)
        .and_then(|r| r.split(" Mbit/s").next())
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no bit rate on the page:\n{later}"));
    assert!((0.2..5.0).contains(&rate), "{rate} Mbit/s");
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
    for path in [
        "/",
        "/metrics",
        "/snapshot.jpg",
        "/stream.ws",
        "/nothing-here",
    ] {
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
    let (code, headers, _) = curl(
        &d.http_url("/snapshot.jpg?width=640"),
        &["--digest", "-u", "viewer:secret", "-o", "/dev/null"],
    );
    assert_eq!(code, 200, "{headers}");
    assert!(
        headers.to_lowercase().contains("content-type: image/jpeg"),
        "{headers}"
    );
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

/// A bare HTTP/1.1 GET: the status code, the headers and the body.
fn get(addr: std::net::SocketAddr, target: &str) -> (u16, String, Vec<u8>) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head, raw[split + 4..].to_vec())
}

/// The size ffprobe reads from a JPEG.
fn jpeg_size(jpeg: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("still.jpg");
    std::fs::write(&path, jpeg).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn snapshot_is_the_picture_and_fifty_callers_share_one_encode() {
    let d = Daemon::start(Source::TestPattern);
    let addr: std::net::SocketAddr = d
        .http_url("")
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    // Let the stream start, then fifty callers at once.
    assert_eq!(get(addr, "/snapshot.jpg").0, 200);
    std::thread::sleep(Duration::from_millis(1100));
    let started = Instant::now();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let (code, head, body) = get(addr, "/snapshot.jpg");
                (code, head, body, t.elapsed())
            })
        })
        .collect();
    let answers: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    let took = started.elapsed();
    for (code, head, _, elapsed) in &answers {
        assert_eq!(*code, 200, "{head}");
        assert!(
            head.to_lowercase().contains("content-type: image/jpeg"),
            "{head}"
        );
        assert!(*elapsed < Duration::from_secs(1), "answered in {elapsed:?}");
    }
    let distinct: std::collections::HashSet<&Vec<u8>> = answers.iter().map(|a| &a.2).collect();
    assert!(
        distinct.len() <= 1 + took.as_secs() as usize,
        "{} different JPEGs in {took:?}",
        distinct.len()
    );
    assert_eq!(jpeg_size(&answers[0].2), "mjpeg,1280,720");
    let (_, _, metrics) = curl(&d.http_url("/metrics"), &[]);
    assert_eq!(sample(&metrics, "streamcam_snapshot_requests_total"), 51.0);
    let encodes = sample(&metrics, "streamcam_snapshot_encodes_total");
    assert!(
        encodes <= 2.0 + took.as_secs_f64().ceil(),
        "{encodes} encodes for 51 calls in {took:?}"
    );

    // Scaled down on request; nonsense refused.
    let (code, _, small) = get(addr, "/snapshot.jpg?width=320");
    assert_eq!(code, 200);
    assert_eq!(jpeg_size(&small), "mjpeg,320,180");
    for bad in ["width=abc", "width=3", "width=-5"] {
        let (code, _, body) = get(addr, &format!("/snapshot.jpg?{bad}"));
        assert_eq!(code, 400, "{bad}: {}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn snapshot_of_an_h264_source_decodes_its_key_frame() {
    let d = Daemon::start(Source::File);
    let (code, _, jpeg) = curl_bytes(&d.http_url("/snapshot.jpg"));
    assert_eq!(code, 200);
    assert_eq!(jpeg_size(&jpeg), "mjpeg,1280,720");
}

/// The status code, headers and body of `url` (a bare GET).
fn curl_bytes(url: &str) -> (u16, String, Vec<u8>) {
    let addr = url.trim_start_matches("http://");
    let (addr, target) = addr.split_at(addr.find('/').unwrap());
    get(addr.parse().unwrap(), target)
}

#[test]
fn the_onvif_services_answer_bad_requests_clearly_and_only_when_on() {
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::File,
        "\n[onvif]\ndiscovery = false\n[auth]\n[[auth.users]]\nname = \"admin\"\npassword = \"secret\"\n",
    );
    let url = d.http_url("/onvif/device_service");
    let soap = ["-H", "Content-Type: application/soap+xml; charset=utf-8"];
    // Not POST: refused, naming the method that works.
    let (code, headers, _) = curl(&url, &[]);
    assert_eq!(code, 405, "{headers}");
    assert!(
        headers.to_ascii_lowercase().contains("allow: post"),
        "{headers}"
    );
    // Not SOAP: a SOAP fault saying so.
    let (code, headers, body) = curl(&url, &[&soap[..], &["--data-binary", "hello"]].concat());
    assert_eq!(code, 400, "{headers}{body}");
    assert!(headers.contains("application/soap+xml"), "{headers}");
    assert!(
        body.contains("ter:InvalidArgs") && body.contains("not a SOAP request"),
        "{body}"
    );
    // Too large: refused before it is read.
    let big = format!("<x>{}</x>", "a".repeat(100_000));
    let (code, _, body) = curl(&url, &[&soap[..], &["--data-binary", &big]].concat());
    assert_eq!(code, 413, "{body}");
    // An operation past the login, without one: not authorized, and
    // asked for HTTP Digest (which a request without a token may use).
    let request = "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Body>\
        <GetDeviceInformation xmlns=\"http://www.onvif.org/ver10/device/wsdl\"/></env:Body></env:Envelope>";
    let (code, headers, body) = curl(&url, &[&soap[..], &["--data-binary", request]].concat());
    assert_eq!(code, 401, "{body}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("www-authenticate: digest"),
        "{headers}"
    );
    assert!(body.contains("ter:NotAuthorized"), "{body}");
    // The clock is anyone's.
    let clock = request.replace("GetDeviceInformation", "GetSystemDateAndTime");
    let (code, _, body) = curl(&url, &[&soap[..], &["--data-binary", &clock]].concat());
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("<tt:DateTimeType>NTP</tt:DateTimeType>"),
        "{body}"
    );
    // Without [onvif], there is no ONVIF service.
    let off = Daemon::start(Source::File);
    let (code, _, body) = curl(
        &off.http_url("/onvif/device_service"),
        &[&soap[..], &["--data-binary", &clock]].concat(),
    );
    assert_eq!(code, 405, "{body}");
    assert!(!body.contains("Envelope"), "{body}");
}
