//! Publishing to relays (`[[publish]]`): real servers that take a
//! published stream (ffmpeg's `-rtsp_flags listen` and SRT listener,
//! gst-rtsp-server in record mode with Digest or TLS through
//! `tests/relay/rtsp_record_server.py`, nginx with Debian's RTMP module,
//! behind its stream module's TLS for RTMPS, and srt-live-transmit as an
//! SRT gateway) read it back and decode it; relays that restart, refuse,
//! stall or never answer are retried while local viewers keep every frame.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clients::{self, Decoded, Mode};
use crate::daemon::{Daemon, Source};
use crate::http::{curl, sample};

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ffmpeg decoding 60 pictures of the transport stream sent to
/// `udp://127.0.0.1:port`, once it listens there: what is sent before
/// would be lost, and with it the stream's first key frame.
fn udp_reader(port: u16) -> std::thread::JoinHandle<Decoded> {
    let url = format!("udp://127.0.0.1:{port}");
    let reader = std::thread::spawn(move || clients::ffmpeg(&url, "", 60, Mode::Decode));
    // /proc/net/udp names each socket's local address as hex "IP:PORT".
    let bound = format!(":{port:04X} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| t.contains(&bound)) {
        assert!(Instant::now() < deadline, "ffmpeg never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    reader
}

/// A self-signed certificate of a relay at `localhost` and 127.0.0.1, in
/// PEM files.
struct Certificate {
    dir: tempfile::TempDir,
}

impl Certificate {
    fn new() -> Certificate {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        Certificate { dir }
    }

    fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> std::path::PathBuf {
        self.dir.path().join("key.pem")
    }
}

/// A daemon streaming the sample file and publishing to `urls`.
fn publishing_daemon(urls: &[String]) -> Daemon {
    let targets: String = urls
        .iter()
        .map(|u| format!("\n[[publish]]\nurl = \"{u}\"\n"))
        .collect();
    Daemon::start_with("127.0.0.1", Source::File, &targets)
}

/// gst-rtsp-server taking a published stream at `rtsp://127.0.0.1:port/live`
/// (with Digest when `credentials` are given), decoding what it gets.
struct Relay {
    child: Child,
    /// Each decoded picture: when it came, its size and time stamp (ns).
    frames: Arc<Mutex<Vec<(Instant, String, u64)>>>,
}

impl Relay {
    fn start(port: u16, credentials: Option<(&str, &str)>) -> Relay {
        Relay::launch(port, credentials, None)
    }

    /// The same over TLS (RTSPS) with `certificate`'s files.
    fn start_tls(port: u16, certificate: &Certificate) -> Relay {
        Relay::launch(port, None, Some(certificate))
    }

    fn launch(port: u16, credentials: Option<(&str, &str)>, tls: Option<&Certificate>) -> Relay {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/relay/rtsp_record_server.py"
        );
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).arg(port.to_string()).arg("/live");
        if let Some((user, password)) = credentials {
            cmd.args([user, password]);
        }
        if let Some(c) = tls {
            cmd.arg("--tls").arg(c.cert()).arg(c.key());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running tests/relay/rtsp_record_server.py (python3-gi, gir1.2-gst-rtsp-server-1.0)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().and_then(Result::ok);
        assert_eq!(ready.as_deref(), Some("ready"), "the relay did not start");
        let frames = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&frames);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut f = line.split(' ').skip(1);
                if let (Some(size), Some(pts)) = (f.next(), f.next().and_then(|p| p.parse().ok())) {
                    sink.lock()
                        .unwrap()
                        .push((Instant::now(), size.to_string(), pts));
                }
            }
        });
        Relay { child, frames }
    }

    /// Waits up to `limit` for `n` pictures; returns when the first came.
    fn wait_for(&self, n: usize, limit: Duration) -> Option<Instant> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            let frames = self.frames.lock().unwrap();
            if frames.len() >= n {
                return Some(frames[0].0);
            }
            drop(frames);
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Checks the pictures so far: all 1280x720, one frame time apart.
    fn assert_steady(&self, what: &str) {
        let frames = self.frames.lock().unwrap();
        assert!(
            frames.iter().all(|(_, size, _)| size == "1280x720"),
            "{what}: sizes"
        );
        for pair in frames.windows(2) {
            let step = pair[1].2.saturating_sub(pair[0].2);
            assert!(
                (30_000_000..37_000_000).contains(&step),
                "{what}: a step of {step} ns between pictures (one is missing, or time went back)"
            );
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local viewer over TCP for `frames` pictures, in the background.
fn local_viewer(d: &Daemon, frames: usize) -> std::thread::JoinHandle<Decoded> {
    let url = d.url();
    std::thread::spawn(move || clients::ffmpeg(&url, "tcp", frames, Mode::Decode))
}

#[test]
fn ffmpeg_listening_decodes_what_is_published() {
    let url = format!("rtsp://127.0.0.1:{}/live/cam", free_port());
    let relay = {
        let url = url.clone();
        std::thread::spawn(move || clients::ffmpeg_listening(&url, 90))
    };
    std::thread::sleep(Duration::from_millis(500));
    let d = publishing_daemon(&[url]);
    let got = relay.join().unwrap();
    got.assert_clean("ffmpeg -rtsp_flags listen", 90);
    assert!(
        d.log().contains("publish[0] rtsp://127.0.0.1:"),
        "{}",
        d.log()
    );
}

#[test]
fn a_relay_with_digest_gets_every_frame_and_its_restart_is_bridged() {
    let port = free_port();
    let relay = Relay::start(port, Some(("camera", "s3cret")));
    let d = publishing_daemon(&[format!("rtsp://camera:s3cret@127.0.0.1:{port}/live")]);
    let viewer = local_viewer(&d, 300);
    assert!(
        relay.wait_for(60, Duration::from_secs(10)).is_some(),
        "no pictures at the relay:\n{}",
        d.log()
    );
    relay.assert_steady("the relay");
    // The relay goes away and comes back.
    drop(relay);
    std::thread::sleep(Duration::from_millis(500));
    let restarted = Instant::now();
    let relay = Relay::start(port, Some(("camera", "s3cret")));
    let first = relay
        .wait_for(30, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the stream did not come back:\n{}", d.log()));
    let back = first.duration_since(restarted);
    // The back-off after the loss: 1 s, then 2 s, then 4 s (each give or
    // take a fifth), and a key frame, however slowly the relay comes up on
    // a busy machine.
    assert!(back < Duration::from_secs(9), "back after {back:?}");
    relay.assert_steady("the restarted relay");
    viewer
        .join()
        .unwrap()
        .assert_clean("a local viewer meanwhile", 300);
    let (_, _, metrics) = curl(&d.http_url("/metrics"), &[]);
    assert_eq!(
        sample(&metrics, "streamcam_publish_connects_total{target=\"0\"}"),
        2.0
    );
    assert_eq!(sample(&metrics, "streamcam_publish_up{target=\"0\"}"), 1.0);
    let log = d.log();
    assert!(log.contains(": lost: "), "{log}");
    assert!(!log.contains("s3cret"), "the password is logged:\n{log}");
    eprintln!(
        "the stream was back at the restarted relay {} ms after it listened",
        back.as_millis()
    );
}

#[test]
fn refused_unanswered_and_wrong_password_relays_are_retried_and_hurt_no_one() {
    let wrong = free_port();
    let _relay = Relay::start(wrong, Some(("camera", "right")));
    let refused = free_port();
    // Takes connections and never reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let d = publishing_daemon(&[
        format!("rtsp://camera:wrong@127.0.0.1:{wrong}/live"),
        format!("rtsp://127.0.0.1:{refused}/live"),
        format!("rtsp://127.0.0.1:{silent_port}/live"),
    ]);
    let viewer = local_viewer(&d, 390);
    let got = viewer.join().unwrap();
    got.assert_clean("a local viewer while three relays fail", 390);
    let log = d.log();
    for (target, why) in [
        (0, "ANNOUNCE: the server refused the user and password"),
        (1, "Connection refused"),
        (2, "no answer to ANNOUNCE within 10s"),
    ] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("publish[{target}] ")) && l.contains("cannot publish"))
            .collect();
        // Tried again and again, logged once.
        assert_eq!(lines.len(), 1, "publish[{target}]:\n{log}");
        assert!(lines[0].contains(why), "publish[{target}]: {}", lines[0]);
    }
    assert!(!log.contains("camera:wrong"), "{log}");
    let (_, _, metrics) = curl(&d.http_url("/metrics"), &[]);
    for target in 0..3 {
        let up = format!("streamcam_publish_up{{target=\"{target}\"}}");
        assert_eq!(sample(&metrics, &up), 0.0, "{metrics}");
    }
    let (_, _, page) = curl(&d.http_url("/"), &[]);
    assert!(
        page.contains("retrying: ANNOUNCE: the server refused the user and password"),
        "{page}"
    );
    drop(silent);
}

#[test]
fn a_relay_that_stops_reading_is_dropped_while_local_viewers_keep_every_frame() {
    let port = free_port();
    let relay = Relay::start(port, None);
    let d = publishing_daemon(&[format!("rtsp://127.0.0.1:{port}/live")]);
    assert!(
        relay.wait_for(30, Duration::from_secs(10)).is_some(),
        "{}",
        d.log()
    );
    let viewer = local_viewer(&d, 480);
    // The relay freezes: it neither reads nor closes.
    let pid = relay.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stalled = d.wait_for_log("the relay took no data for 5 s", Duration::from_secs(20));
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    assert!(
        stalled.is_some(),
        "the stalled relay was not dropped:\n{}",
        d.log()
    );
    viewer
        .join()
        .unwrap()
        .assert_clean("a local viewer beside a frozen relay", 480);
}

#[test]
fn an_rtsps_relay_is_trusted_by_its_certificate_in_ca_and_refused_without() {
    let certificate = Certificate::new();
    let port = free_port();
    let relay = Relay::start_tls(port, &certificate);
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::File,
        &format!(
            "\n[[publish]]\nurl = \"rtsps://127.0.0.1:{port}/live\"\nca = \"{}\"\n\
             \n[[publish]]\nurl = \"rtsps://localhost:{port}/live\"\n",
            certificate.cert().display()
        ),
    );
    assert!(
        relay.wait_for(90, Duration::from_secs(20)).is_some(),
        "the RTSPS relay decoded {} pictures:\n{}",
        relay.frames.lock().unwrap().len(),
        d.log()
    );
    relay.assert_steady("the RTSPS relay");
    // The second target does not know the certificate: refused, said once
    // with what to do, and retried.
    let (_, _, metrics) = curl(&d.http_url("/metrics"), &[]);
    assert_eq!(sample(&metrics, "streamcam_publish_up{target=\"0\"}"), 1.0);
    assert_eq!(sample(&metrics, "streamcam_publish_up{target=\"1\"}"), 0.0);
    let log = d.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("publish[1]") && l.contains("cannot publish") && l.contains("certificate")
        })
        .collect();
    assert_eq!(refusals.len(), 1, "{log}");
    assert!(refusals[0].contains("`ca`"), "{}", refusals[0]);
}

/// Waits for target 0's second connection after its relay came back at
/// `restarted`; returns how long that took. The back-off after the loss is
/// 1 s, then 2 s, then 4 s (each give or take a fifth), however slowly the
/// relay comes up on a busy machine: under 8 s.
fn reconnected(d: &Daemon, restarted: Instant) -> Duration {
    let connects = || {
        let (_, _, metrics) = curl(&d.http_url("/metrics"), &[]);
        sample(&metrics, "streamcam_publish_connects_total{target=\"0\"}")
    };
    while connects() < 2.0 && restarted.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = restarted.elapsed();
    assert!(
        back < Duration::from_secs(8),
        "back after {back:?}:\n{}",
        d.log()
    );
    back
}

/// nginx with Debian's RTMP module, relaying `rtmp://127.0.0.1:port/live/*`.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(port: u16) -> Nginx {
        Nginx::launch(port, "", "")
    }

    /// The same, and RTMPS on `tls_port` (TLS ended by nginx's stream
    /// module with `certificate`, as in front of a real RTMP server).
    fn start_tls(port: u16, tls_port: u16, certificate: &Certificate) -> Nginx {
        let nginx = Nginx::launch(
            port,
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;",
            &format!(
                "stream {{ server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {}; ssl_certificate_key {}; proxy_pass 127.0.0.1:{port}; }} }}\n",
                certificate.cert().display(),
                certificate.key().display()
            ),
        );
        wait_for_listener(tls_port);
        nginx
    }

    /// nginx with the RTMP module, more `modules` and more `blocks`.
    fn launch(port: u16, modules: &str, blocks: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n{modules}\n\
                 daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}\n{blocks}\n",
                dir = dir.path().display(),
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .spawn()
            .expect("running nginx (nginx-light, libnginx-mod-rtmp, libnginx-mod-stream)");
        wait_for_listener(port);
        Nginx { child, _dir: dir }
    }
}

/// Waits up to 10 s for something to listen on `port`.
fn wait_for_listener(port: u16) {
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nginx_rtmp_relays_what_is_published_and_its_restart_is_bridged() {
    let port = free_port();
    let nginx = Nginx::start(port);
    let relayed = format!("rtmp://127.0.0.1:{port}/live/cam");
    let d = publishing_daemon(std::slice::from_ref(&relayed));
    let viewer = local_viewer(&d, 450);
    // ffmpeg buffers while it probes FLV: the pace it hands pictures out is
    // its own, the time stamps are the daemon's.
    let got = clients::ffmpeg(&relayed, "", 90, Mode::Decode);
    got.assert_complete("ffmpeg reading nginx-rtmp", 90, (1280, 720));
    // nginx goes away and comes back.
    drop(nginx);
    std::thread::sleep(Duration::from_millis(500));
    let _nginx = Nginx::start(port);
    let back = reconnected(&d, Instant::now());
    let got = clients::ffmpeg(&relayed, "", 90, Mode::Decode);
    got.assert_complete("ffmpeg reading the restarted nginx-rtmp", 90, (1280, 720));
    viewer
        .join()
        .unwrap()
        .assert_clean("a local viewer meanwhile", 450);
    let log = d.log();
    assert!(log.contains("/live/****"), "{log}");
    assert!(
        !log.contains("/live/cam"),
        "the stream key is logged:\n{log}"
    );
    eprintln!(
        "publishing to the restarted nginx again {} ms after it listened",
        back.as_millis()
    );
}

#[test]
fn rtmps_through_a_tls_front_reaches_nginx_rtmp() {
    let certificate = Certificate::new();
    let (port, tls_port) = (free_port(), free_port());
    let _nginx = Nginx::start_tls(port, tls_port, &certificate);
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::File,
        &format!(
            "\n[[publish]]\nurl = \"rtmps://localhost:{tls_port}/live/cam\"\nca = \"{}\"\n",
            certificate.cert().display()
        ),
    );
    let got = clients::ffmpeg(
        &format!("rtmp://127.0.0.1:{port}/live/cam"),
        "",
        90,
        Mode::Decode,
    );
    got.assert_complete("ffmpeg reading what came by RTMPS", 90, (1280, 720));
    let log = d.log();
    assert!(
        log.contains("publish[0] rtmps://localhost:") && log.contains("connected"),
        "{log}"
    );
}

#[test]
fn srt_with_a_stream_id_and_a_passphrase_reaches_ffmpegs_listener() {
    let port = free_port();
    let passphrase = "correct-horse-battery";
    let listener = format!("srt://127.0.0.1:{port}?mode=listener&passphrase={passphrase}");
    let relay = std::thread::spawn(move || clients::ffmpeg(&listener, "", 90, Mode::Decode));
    std::thread::sleep(Duration::from_millis(500));
    let d = publishing_daemon(&[format!(
        "srt://127.0.0.1:{port}?streamid=publish:cam1&passphrase={passphrase}&latency=200"
    )]);
    let got = relay.join().unwrap();
    got.assert_complete("ffmpeg's SRT listener", 90, (1280, 720));
    let log = d.log();
    assert!(
        log.contains(&format!("publish[0] srt://127.0.0.1:{port}?****")),
        "{log}"
    );
    assert!(
        !log.contains(passphrase),
        "the passphrase is logged:\n{log}"
    );
}

/// srt-live-transmit as an SRT gateway: takes a caller on `port` and hands
/// the transport stream on to `udp://127.0.0.1:udp_port`.
struct SrtGateway {
    child: Child,
}

impl SrtGateway {
    fn start(port: u16, udp_port: u16, query: &str) -> SrtGateway {
        let child = Command::new("srt-live-transmit")
            .arg(format!("srt://:{port}?mode=listener{query}"))
            .arg(format!("udp://127.0.0.1:{udp_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running srt-live-transmit (srt-tools)");
        std::thread::sleep(Duration::from_millis(300));
        SrtGateway { child }
    }

    /// Stops it as a service manager would (SIGTERM: it closes its
    /// connections).
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for SrtGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_srt_gateway_restart_is_bridged_and_wrong_passphrase_and_silence_are_said_once() {
    let (port, udp_port) = (free_port(), free_port());
    let (locked, locked_udp) = (free_port(), free_port());
    let gateway = SrtGateway::start(port, udp_port, "");
    let _locked = SrtGateway::start(locked, locked_udp, "&passphrase=the-right-passphrase");
    let reader = udp_reader(udp_port);
    let d = publishing_daemon(&[
        format!("srt://127.0.0.1:{port}?streamid=cam1"),
        format!("srt://127.0.0.1:{locked}?passphrase=a-wrong-passphrase"),
        format!("srt://127.0.0.1:{}", free_port()),
    ]);
    let viewer = local_viewer(&d, 450);
    reader.join().unwrap().assert_complete(
        "ffmpeg reading the SRT gateway's output",
        60,
        (1280, 720),
    );
    gateway.stop();
    std::thread::sleep(Duration::from_millis(500));
    let reader = udp_reader(udp_port);
    let _gateway = SrtGateway::start(port, udp_port, "");
    let back = reconnected(&d, Instant::now());
    reader.join().unwrap().assert_complete(
        "ffmpeg reading the restarted SRT gateway",
        60,
        (1280, 720),
    );
    viewer
        .join()
        .unwrap()
        .assert_clean("a local viewer meanwhile", 450);
    let log = d.log();
    for (target, says) in [(1, "wrong password"), (2, "no SRT answer")] {
        // Said once, however often it is retried (a gateway still
        // starting may first have been silent).
        let refusals = log
            .lines()
            .filter(|l| {
                l.contains(&format!("publish[{target}]"))
                    && l.contains("cannot publish")
                    && l.contains(says)
            })
            .count();
        assert_eq!(refusals, 1, "{log}");
    }
    assert!(!log.contains("wrong-passphrase"), "{log}");
    assert!(
        !log.contains("Handshake has"),
        "the SRT crate's noise:\n{log}"
    );
    eprintln!(
        "publishing to the restarted SRT gateway again {} ms after it listened",
        back.as_millis()
    );
}
