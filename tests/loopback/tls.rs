//! RTSPS: ffmpeg, GStreamer and retina play over TLS, the self-signed
//! certificate is made once and kept (its logged fingerprint is the one
//! clients see), openssl and rustls verify it when pinned, and passwords
//! work inside TLS.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::clients::{self, Mode};
use crate::daemon::{Daemon, Source};

/// `[tls]` on a port the kernel picks, keeping its certificate in `store`.
pub fn tls_table(store: &Path) -> String {
    format!("[tls]\nlisten = \"127.0.0.1:0\"\nstore = {store:?}\n")
}

/// The RTSPS port and certificate fingerprint the daemon logged.
fn rtsps(d: &Daemon) -> (u16, String) {
    let line = d
        .wait_for_log("RTSPS on ", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no RTSPS line:\n{}", d.log()));
    let addr = line
        .split("RTSPS on ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    let fingerprint = line
        .split("SHA-256 fingerprint ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (port, fingerprint)
}

/// openssl's view of the certificate the server presents, verified
/// against `ca` for the name "localhost": (verified, SHA-256 fingerprint).
fn openssl_connect(port: u16, ca: &Path) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost \
             -verify_hostname localhost -verify_return_error -CAfile {} </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256",
            ca.display()
        ))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fingerprint = text
        .trim()
        .split('=')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (!fingerprint.is_empty(), fingerprint)
}

#[test]
fn ffmpeg_and_gstreamer_play_over_rtsps_with_a_kept_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tls");
    let mut d = Daemon::start_with("127.0.0.1", Source::File, &tls_table(&store));
    let (port, fingerprint) = rtsps(&d);
    assert!(d.log().contains("self-signed, made now"), "{}", d.log());
    let url = format!("rtsps://127.0.0.1:{port}/stream");

    let (probe, err) = clients::ffprobe(&url, "tcp");
    assert!(
        probe.contains("codec_name=h264") && probe.contains("width=1280"),
        "{probe}\n{err}"
    );
    clients::ffmpeg(&url, "tcp", 60, Mode::Receive).assert_clean("ffmpeg rtsps", 60);
    let gst = Command::new("timeout")
        .args([
            "30",
            "gst-launch-1.0",
            "-q",
            "rtspsrc",
            &format!("location={url}"),
        ])
        .args([
            "tls-validation-flags=0",
            "protocols=tcp",
            "!",
            "rtph264depay",
        ])
        .args([
            "!",
            "h264parse",
            "!",
            "identity",
            "eos-after=60",
            "!",
            "fakesink",
        ])
        .output()
        .unwrap();
    assert!(
        gst.status.success(),
        "gstreamer over rtsps: {}",
        String::from_utf8_lossy(&gst.stderr)
    );
    // Plain RTSP is still served on its own port.
    let (probe, _) = clients::ffprobe(&d.url(), "tcp");
    assert!(probe.contains("codec_name=h264"), "{probe}");

    // Pinned: the certificate verifies against itself for "localhost",
    // has the fingerprint the log showed, and not against the system CAs.
    let cert = store.join("cert.pem");
    assert_eq!(openssl_connect(port, &cert), (true, fingerprint.clone()));
    let (verified, _) = openssl_connect(port, Path::new("/etc/ssl/certs/ca-certificates.crt"));
    assert!(!verified, "a self-signed certificate passed the system CAs");

    // Plain RTSP on the TLS port: no answer, and nobody else notices.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut plain, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n").unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut buf);
    assert!(!buf.starts_with(b"RTSP/1.0"), "answered in clear");

    // A restart serves the same certificate.
    d.terminate(Duration::from_secs(5)).expect("stops");
    let d = Daemon::start_with("127.0.0.1", Source::File, &tls_table(&store));
    let (_, again) = rtsps(&d);
    assert_eq!(again, fingerprint);
    assert!(d.log().contains("self-signed, made earlier"), "{}", d.log());
}

#[test]
fn passwords_work_inside_rtsps() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[[auth.users]]\nname = \"viewer\"\npassword = \"secret\"\n",
        tls_table(&dir.path().join("tls"))
    );
    let d = Daemon::start_with("127.0.0.1", Source::File, &config);
    let (port, _) = rtsps(&d);
    let (probe, err) = clients::ffprobe(
        &format!("rtsps://viewer:secret@127.0.0.1:{port}/stream"),
        "tcp",
    );
    assert!(probe.contains("codec_name=h264"), "{probe}\n{err}");
    let (probe, err) = clients::ffprobe(
        &format!("rtsps://viewer:wrong@127.0.0.1:{port}/stream"),
        "tcp",
    );
    assert!(probe.is_empty() && err.contains("401"), "{probe}\n{err}");
    // Basic inside TLS is accepted (auth.basic is off: on plain RTSP it is not).
    let request = format!(
        "DESCRIBE rtsps://127.0.0.1:{port}/stream RTSP/1.0\r\nCSeq: 1\r\n\
         Authorization: Basic dmlld2VyOnNlY3JldA==\r\n\r\n"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(printf '{}'; sleep 2) | openssl s_client -quiet -connect 127.0.0.1:{port} 2>/dev/null",
            request.replace("\r\n", "\\r\\n")
        ))
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        reply.starts_with("RTSP/1.0 200 OK"),
        "Basic over TLS: {reply:?}"
    );
    assert!(reply.contains("m=video"), "{reply}");
}

/// A loopback relay from plain RTSP into the daemon's TLS port, for a
/// client with no `rtsps://` of its own (retina): rustls on the relay's
/// far side verifies the kept certificate, pinned, for "localhost". It
/// serves one connection; returns its port.
fn tls_relay(tls_port: u16, cert: &Path) -> u16 {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (plain, _) = listener.accept().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            plain.set_nonblocking(true).unwrap();
            let mut plain = tokio::net::TcpStream::from_std(plain).unwrap();
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
                .await
                .unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector
                .connect(name, tcp)
                .await
                .expect("the pinned certificate verifies for localhost");
            let _ = tokio::io::copy_bidirectional(&mut plain, &mut tls).await;
        });
    });
    port
}

#[test]
fn retina_plays_inside_rtsps_with_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tls");
    let config = format!(
        "{}[[auth.users]]\nname = \"viewer\"\npassword = \"secret\"\n",
        tls_table(&store)
    );
    let d = Daemon::start_with("127.0.0.1", Source::File, &config);
    let (port, _) = rtsps(&d);
    let relay = tls_relay(port, &store.join("cert.pem"));
    let url = format!("rtsp://viewer:secret@127.0.0.1:{relay}/stream");
    crate::retina_client::play(&url, "tcp", 60, Mode::Decode)
        .decoded
        .assert_clean_at("retina inside rtsps", 60, (1280, 720));
    let log = d.log();
    assert!(
        log.contains("authenticated client=127.0.0.1 user=viewer"),
        "{log}"
    );
    assert!(!log.contains("secret"), "the password in the log:\n{log}");
}

#[test]
fn https_on_the_http_port_with_the_rtsps_certificate_and_basic_only_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}{}",
        tls_table(&dir.path().join("tls")),
        crate::auth::users(false)
    );
    let d = Daemon::start_with("127.0.0.1", Source::TestPattern, &extra);
    let (_, fingerprint) = rtsps(&d);
    let https = d.http_url("/").replace("http://", "https://");
    let http_port = https.rsplit(':').next().unwrap().trim_end_matches('/');
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{http_port} </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        seen.trim().split('=').nth(1),
        Some(fingerprint.as_str()),
        "{seen}"
    );
    // Basic inside TLS; Digest over both; Basic in the clear refused.
    let basic = ["-k", "--basic", "-u", "viewer:secret"];
    let (code, _, page) = crate::http::curl(&https, &basic);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<video"), "{page}");
    let (code, _, _) = crate::http::curl(&d.http_url("/"), &basic[1..]);
    assert_eq!(code, 401, "Basic over plain HTTP");
    let (code, _, _) = crate::http::curl(
        &format!("{https}snapshot.jpg"),
        &["-k", "--digest", "-u", "viewer:secret", "-o", "/dev/null"],
    );
    assert_eq!(code, 200);
    // Plain HTTP still works on the same port.
    let (code, _, _) = crate::http::curl(
        &d.http_url("/metrics"),
        &["--digest", "-u", "viewer:secret"],
    );
    assert_eq!(code, 200);
}
