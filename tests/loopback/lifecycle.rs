//! The daemon's life: what PLAY promises, SIGTERM, and config checking.

use std::time::Duration;

use crate::daemon::{Daemon, Source};
use crate::raw::{self, Frame, RawClient};

/// `seq` and `rtptime` of an RTP-Info header.
fn rtp_info(value: &str) -> (u16, u32) {
    let field = |name: &str| {
        value
            .split(';')
            .find_map(|p| p.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in RTP-Info {value:?}"))
            .to_string()
    };
    (
        field("seq=").parse().unwrap(),
        field("rtptime=").parse().unwrap(),
    )
}

/// Reads past sender reports to the first RTP packet on `c` and checks
/// that it is the one RTP-Info named.
fn first_media_is(c: &mut RawClient, seq: u16, rtptime: u32) {
    loop {
        match c.read_frame().expect("media after PLAY") {
            Frame::Interleaved(1, _) => continue,
            Frame::Interleaved(0, rtp) => {
                assert_eq!(u16::from_be_bytes([rtp[2], rtp[3]]), seq);
                assert_eq!(
                    u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]),
                    rtptime
                );
                assert_eq!(rtp[1] & 0x7f, 96, "payload type");
                return;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn play_reply_precedes_media_and_names_the_first_packet() {
    let d = Daemon::start(Source::TestPattern);
    let mut c = RawClient::connect(&d);
    let url = d.url();
    let describe = c.request("DESCRIBE", &url, &[("Accept", "application/sdp")]);
    assert_eq!(describe.status, 200);
    assert_eq!(
        describe.header("content-base"),
        Some(format!("{url}/").as_str())
    );
    for line in [
        "\r\nc=IN IP4 ",
        "a=rtpmap:96 H264/90000",
        "packetization-mode=1",
        "profile-level-id=",
        "sprop-parameter-sets=",
        "a=control:",
    ] {
        assert!(
            describe.body.contains(line),
            "SDP lacks {line}:\n{}",
            describe.body
        );
    }
    let setup = c.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    assert_eq!(setup.status, 200);
    assert!(setup.header("session").unwrap().ends_with(";timeout=60"));
    let play = c.play(&setup.session());
    assert_eq!(play.status, 200);
    assert_eq!(play.header("range"), Some("npt=now-"));
    let info = play.header("rtp-info").expect("RTP-Info");
    assert!(info.contains(&format!("url={url}/trackID=0")), "{info}");
    let (seq, rtptime) = rtp_info(info);
    // The very next thing on the connection is media (after at most a
    // sender report), and its first RTP packet is the one RTP-Info names.
    first_media_is(&mut c, seq, rtptime);
    // Keep-alives are answered.
    let session = setup.session();
    for method in ["GET_PARAMETER", "SET_PARAMETER", "OPTIONS"] {
        let r = c.request(method, &url, &[("Session", &session)]);
        assert_eq!(r.status, 200, "{method}");
    }
    // PAUSE stops media; PLAY resumes it at a key frame. The stream has
    // one sequence space for every client (as gst-rtsp-server and mediamtx
    // do): the numbers moved on while paused, and RTP-Info names the first
    // packet again.
    assert_eq!(
        c.request("PAUSE", &url, &[("Session", &session)]).status,
        200
    );
    c.stream
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    while let Some(frame) = c.read_frame_or_timeout() {
        assert!(
            matches!(frame, Frame::Interleaved(1, _)),
            "only RTCP while paused"
        );
    }
    let last_seq = c.last_rtp_seq.unwrap();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let play = c.play(&session);
    assert_eq!(play.status, 200);
    let (resumed_seq, resumed_rtptime) = rtp_info(play.header("rtp-info").unwrap());
    let ahead = resumed_seq.wrapping_sub(last_seq);
    assert!(
        (1..0x8000).contains(&ahead),
        "sequence goes forward after PAUSE: {last_seq} then {resumed_seq}"
    );
    first_media_is(&mut c, resumed_seq, resumed_rtptime);
    let teardown = c.request("TEARDOWN", &url, &[("Session", &session)]);
    assert_eq!(teardown.status, 200);
}

#[test]
fn rtcp_bye_from_a_udp_client_ends_its_session() {
    let d = Daemon::start(Source::File);
    let (rtp, rtcp) = raw::udp_pair("127.0.0.1");
    let mut c = RawClient::connect(&d);
    let setup = c.setup(&raw::udp_transport(&rtp));
    assert_eq!(c.play(&setup.session()).status, 200);
    let mut buf = [0u8; 2048];
    let (_, server_rtcp) = rtcp.recv_from(&mut buf).expect("a sender report");
    rtp.recv(&mut buf).expect("media");
    let mut bye = raw::receiver_report(0x0bad_cafe);
    bye.extend_from_slice(&[0x81, 203, 0, 1]);
    bye.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes());
    rtcp.send_to(&bye, server_rtcp).unwrap();
    assert!(
        d.wait_for_log("client sent RTCP BYE", Duration::from_secs(3))
            .is_some(),
        "{}",
        d.log()
    );
    // Drain what was in flight, then nothing more comes.
    rtp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while rtp.recv(&mut buf).is_ok() {}
    rtp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(rtp.recv(&mut buf).is_err(), "media after BYE");
}

#[test]
fn sigterm_sends_bye_to_every_client_and_exits_0() {
    let mut d = Daemon::start(Source::File);
    let (rtp, rtcp) = raw::udp_pair("127.0.0.1");
    let mut udp = RawClient::connect(&d);
    let setup = udp.setup(&raw::udp_transport(&rtp));
    assert_eq!(udp.play(&setup.session()).status, 200);
    let mut tcp = RawClient::connect(&d);
    let setup = tcp.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
    assert_eq!(tcp.play(&setup.session()).status, 200);
    let mut buf = [0u8; 2048];
    rtp.recv(&mut buf).expect("UDP media flows");

    let (status, took) = d.terminate(Duration::from_secs(3)).expect("daemon exits");
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(1), "took {took:?} to stop");

    let mut udp_bye = false;
    while let Ok(n) = rtcp.recv(&mut buf) {
        if raw::has_bye(&buf[..n]) {
            udp_bye = true;
            break;
        }
    }
    assert!(udp_bye, "no RTCP BYE over UDP");
    let mut tcp_bye = false;
    while let Some(frame) = tcp.read_frame() {
        if let Frame::Interleaved(1, data) = frame
            && raw::has_bye(&data)
        {
            tcp_bye = true;
        }
    }
    assert!(tcp_bye, "no RTCP BYE over TCP before the connection closed");
}

fn streamcam(args: &[&str]) -> (i32, String, String) {
    let out = crate::daemon::streamcam_command()
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn check_config_accepts_the_shipped_file_and_names_bad_keys() {
    let shipped = format!("{}/dist/streamcam.toml", env!("CARGO_MANIFEST_DIR"));
    let (code, out, _) = streamcam(&["check-config", &shipped]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    for (text, key, line) in [
        (
            "[server]\nlisten = \"0.0.0.0:8554\"\nmax_clinets = 4\n",
            "max_clinets",
            ":3",
        ),
        ("[video]\nbitrate = \"fast\"\n", "video.bitrate", ":2"),
        ("[video]\nwidth = 1281\n", "video.width", ":2"),
        ("[source]\nkind = \"webcam\"\n", "kind", ":2"),
        (
            "[multicast]\ngroup = \"192.168.1.20\"\n",
            "multicast.group",
            ":2",
        ),
        (
            "[[publish]]\nurl = \"rtsp://relay/cam\"\n[[publish]]\nurl = \"relay.example/cam\"\n",
            "publish[1].url",
            ":4",
        ),
        (
            "[auth]\n[[auth.users]]\nname = \"a\"\nha1 = \"abc\"\n",
            "auth.users[0].ha1",
            ":4",
        ),
        (
            "[[auth.users]]\nname = \"a\"\npassword = \"x\"\n[[auth.users]]\nname = \"a\"\npassword = \"y\"\n",
            "auth.users[1].name",
            ":5",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let (code, _, err) = streamcam(&["check-config", bad.to_str().unwrap()]);
        assert_eq!(code, 78, "{text}: {err}");
        assert!(err.contains(key) && err.contains(line), "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        // Running with it fails the same way, before anything starts.
        let (code, _, err) = streamcam(&["--config", bad.to_str().unwrap()]);
        assert_eq!(code, 78, "{err}");
        assert!(!err.contains("listening"), "{err}");
    }
    let missing = dir.path().join("missing.toml");
    let (code, _, err) = streamcam(&["--config", missing.to_str().unwrap()]);
    assert_eq!(code, 78);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn check_camera_says_what_the_source_gives_and_fails_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("streamcam.toml");
    let file = format!(
        "{}/tests/data/testsrc2-720p30.h264",
        env!("CARGO_MANIFEST_DIR")
    );
    for (source, picture) in [
        (
            "kind = \"testpattern\"\n".to_string(),
            "picture: 1280x720 I420 raw, in memory",
        ),
        (
            format!("kind = \"file\"\nfile = \"{file}\"\n"),
            "picture: H.264, already encoded",
        ),
    ] {
        std::fs::write(&config, format!("[source]\n{source}")).unwrap();
        let (code, out, err) = streamcam(&[
            "--config",
            config.to_str().unwrap(),
            "check-camera",
            "--frames",
            "15",
        ]);
        assert_eq!(code, 0, "{source}: {out}{err}");
        assert!(out.contains(picture), "{source}: {out}");
        for line in ["frames: 15 in ", "cpu: ", " ms per frame", "memory: RSS "] {
            assert!(out.contains(line), "{source}: no {line:?} in {out}");
        }
        // The frames are read on the main thread (named after the program,
        // or after qemu when it runs under emulation).
        let threads = out
            .lines()
            .find_map(|l| l.strip_prefix("cpu by thread: "))
            .unwrap_or_else(|| panic!("{source}: no CPU by thread in {out}"));
        let main = threads
            .split(", ")
            .find_map(|t| t.split_once(" (main) "))
            .unwrap_or_else(|| panic!("{source}: no main thread in {threads}"));
        let ms = main
            .1
            .strip_suffix(" ms")
            .and_then(|v| v.parse::<f64>().ok());
        assert!(ms.is_some_and(|ms| ms > 0.0), "{source}: {threads}");
    }
    // A camera that is not there: a clear error, no frames.
    std::fs::write(
        &config,
        "[source]\nkind = \"v4l2\"\ndevice = \"/dev/video-none\"\n",
    )
    .unwrap();
    let (code, out, err) = streamcam(&["--config", config.to_str().unwrap(), "check-camera"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("cannot open the camera"), "{err}");
    assert!(!out.contains("frames:"), "{out}");
    let (code, _, err) = streamcam(&["check-camera", "--frames", "0"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn tells_systemd_ready_status_and_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let notify_socket = path.to_str().unwrap().to_string();
    let mut d = Daemon::start_env(
        "127.0.0.1",
        Source::File,
        "",
        &[
            ("NOTIFY_SOCKET", &notify_socket),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let next = || {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let ready = next();
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(
        ready.contains("STATUS=streaming 1280x720@30 h264 from file"),
        "{ready}"
    );
    assert!(ready.contains("0 clients"), "{ready}");
    // The watchdog (2 s) is petted at least every second while frames flow.
    let start = std::time::Instant::now();
    let mut pets = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        if next().contains("WATCHDOG=1") {
            pets += 1;
        }
    }
    assert!(pets >= 2, "{pets} watchdog pings in 2.5 s");
    // A playing client shows in STATUS.
    let mut c = RawClient::connect(&d);
    let setup = c.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
    assert_eq!(c.play(&setup.session()).status, 200);
    let mut status = String::new();
    while start.elapsed() < Duration::from_secs(10) && !status.contains("1 client") {
        status = next();
    }
    assert!(
        status.contains("STATUS=streaming") && status.contains(", 1 client"),
        "{status}"
    );
    d.terminate(Duration::from_secs(3)).expect("exits");
    let mut buf = [0u8; 4096];
    let mut stopping = false;
    while let Ok(n) = socket.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1");
}

/// Without GStreamer's libcamera element (no `gstreamer1.0-libcamera`:
/// GStreamer here is given an empty plugin directory), an explicit
/// `libcamera` source stops the daemon naming the package, and `auto` says
/// so and streams the test pattern.
#[cfg(feature = "gstreamer")]
#[test]
fn a_missing_libcamera_element_is_named_with_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let registry = dir.path().join("registry.bin");
    let run = |kind: &str| {
        let config = dir.path().join(format!("{kind}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"\"\n[source]\nkind = \"{kind}\"\n[video]\nwidth = 320\nheight = 240\n"
            ),
        )
        .unwrap();
        crate::daemon::streamcam_command()
            .arg("--config")
            .arg(&config)
            .env("GST_PLUGIN_SYSTEM_PATH", &plugins)
            .env("GST_PLUGIN_PATH", &plugins)
            .env("GST_REGISTRY", &registry)
            .env_remove("JOURNAL_STREAM")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = run("libcamera").wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("apt install gstreamer1.0-libcamera"),
        "names the package: {err}"
    );

    let mut auto = run("auto");
    let stderr = auto.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let line = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("source.kind = \"auto\"") => break line,
            Ok(_) => {}
            Err(e) => panic!("no line about the source: {e}"),
        }
    };
    let _ = auto.kill();
    let _ = auto.wait();
    assert!(line.contains("streaming the test pattern"), "{line}");
    assert!(
        line.contains("libcamera through GStreamer: GStreamer has no libcamerasrc element: install it with `apt install gstreamer1.0-libcamera`"),
        "{line}"
    );
}
