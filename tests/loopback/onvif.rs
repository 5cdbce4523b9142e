//! ONVIF with Home Assistant's own client library (onvif-zeep-async, from
//! PyPI; `tests/onvif/ha_setup.py` runs the integration's set-up calls):
//! the camera is added, its two streams are found and play in ffprobe with
//! the credentials put into the URL as Home Assistant does, the snapshot
//! answers Digest, its event subscription (PullPoint) is told the picture
//! is there, and a wrong password is what Home Assistant calls an
//! authentication error. The onvif tier (`ci/onvif`) installs the library
//! and names its Python in ONVIF_PYTHON.

use std::collections::HashMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clients;
use crate::daemon::{Daemon, Source};
use crate::http::curl;

/// A camera at 320x240 with a 160x120 substream, ONVIF on, and `users`.
fn camera(users: &str) -> Daemon {
    Daemon::start_with(
        "127.0.0.1",
        Source::TestPattern,
        &format!(
            "\n[video]\nwidth = 320\nheight = 240\nframerate = 10\n\
             [substream]\nwidth = 160\nheight = 120\n[onvif]\nname = \"Test cam\"\ndiscovery = false\n{users}"
        ),
    )
}

const ADMIN: &str = "[[auth.users]]\nname = \"admin\"\npassword = \"secret\"\n";

/// What Home Assistant's set-up learnt from the camera at `d`, logging in
/// as `user`: each line's first word and the rest (repeated keys keep
/// every line).
fn home_assistant(d: &Daemon, user: &str, password: &str) -> HashMap<String, Vec<String>> {
    home_assistant_with(d, user, password, &[])
}

/// The same, with `env` in the client's environment.
fn home_assistant_with(
    d: &Daemon,
    user: &str,
    password: &str,
    env: &[(&str, &str)],
) -> HashMap<String, Vec<String>> {
    let stdout = client(d, "ha_setup.py", &[user, password], env);
    let mut facts: HashMap<String, Vec<String>> = HashMap::new();
    for line in stdout.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        facts.entry(key.into()).or_default().push(rest.into());
    }
    facts
}

/// What Home Assistant's client library printed running
/// `tests/onvif/SCRIPT` against the camera at `d` (its host and HTTP port,
/// then `args`), with `env`; a client that fails fails the test.
fn client(d: &Daemon, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let python = std::env::var("ONVIF_PYTHON")
        .expect("ONVIF_PYTHON must name the Python with onvif-zeep-async: run `ci/test onvif`");
    let script = format!("{}/tests/onvif/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("timeout")
        .arg("90")
        .arg(python)
        .arg(script)
        .args([&d.host, &d.http_port.to_string()])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("running the ONVIF client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the ONVIF client failed: {stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    stdout
}

/// The one value of `key`.
fn one<'a>(facts: &'a HashMap<String, Vec<String>>, key: &str) -> &'a str {
    match facts.get(key).map(Vec::as_slice) {
        Some([value]) => value,
        other => panic!("{key}: {other:?} in {facts:?}"),
    }
}

#[test]
fn home_assistant_adds_the_camera_and_plays_both_streams() {
    let d = camera(&format!("[auth]\n{ADMIN}"));
    let facts = home_assistant(&d, "admin", "secret");
    assert!(!facts.contains_key("fault"), "{facts:?}");
    assert_eq!(
        one(&facts, "media_xaddr"),
        d.http_url("/onvif/media_service")
    );
    assert_eq!(one(&facts, "events"), "True");
    assert_eq!(one(&facts, "manufacturer"), "streamcam");
    assert_eq!(one(&facts, "firmware"), env!("CARGO_PKG_VERSION"));
    assert!(!one(&facts, "serial").is_empty());
    let mac = one(&facts, "mac");
    assert!(
        mac.len() == 17 && mac.split(':').all(|b| u8::from_str_radix(b, 16).is_ok()),
        "{mac}"
    );
    assert_eq!(one(&facts, "snapshot"), "True");
    // The clock: NTP, UTC, now.
    let clock: Vec<&str> = one(&facts, "clock").split(' ').collect();
    assert_eq!(clock[0], "NTP", "{clock:?}");
    let n: Vec<u64> = clock[1..].iter().map(|v| v.parse().unwrap()).collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs_today = n[3] * 3600 + n[4] * 60 + n[5];
    let diff = (now % 86_400).abs_diff(secs_today);
    assert!(diff <= 60 || diff >= 86_400 - 60, "{clock:?} against {now}");
    // Both streams, each with its URL; Home Assistant puts the user and
    // password into it, and a player plays it.
    let profiles = &facts["profile"];
    assert_eq!(profiles.len(), 2, "{profiles:?}");
    for (profile, token, size, path) in [
        (&profiles[0], "main", "320x240", "/stream"),
        (&profiles[1], "sub", "160x120", "/sub"),
    ] {
        let uri = format!("rtsp://127.0.0.1:{}{path}", d.port);
        assert_eq!(profile, &format!("{token} H264 {size} camera {uri}"));
        let with_login = uri.replace("rtsp://", "rtsp://admin:secret@");
        let (probed, errors) = clients::ffprobe(&with_login, "tcp");
        let (w, h) = size.split_once('x').unwrap();
        assert!(
            probed.contains("codec_name=h264") && probed.contains(&format!("width={w}|height={h}")),
            "{token}: {probed} {errors}"
        );
    }
    // The snapshot URL, with Digest (Home Assistant tries Digest first).
    let snapshot = one(&facts, "snapshot_uri");
    assert_eq!(snapshot, d.http_url("/snapshot.jpg"));
    let (code, headers, _) = curl(snapshot, &["--digest", "-u", "admin:secret"]);
    assert_eq!(code, 200, "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: image/jpeg"),
        "{headers}"
    );
    // Events: the picture is there, said once at the subscription and
    // once at the synchronization point.
    assert_eq!(
        facts["event"], ["tns1:VideoSource/SignalLoss false Initialized camera"; 2],
        "{facts:?}"
    );
    // Nothing more happens: the next pull is held for its whole timeout
    // (2 s), then answered with nothing.
    let quiet: Vec<&str> = one(&facts, "quiet_pull").split(' ').collect();
    let held: f64 = quiet[1].parse().unwrap();
    assert!(quiet[0] == "0" && (1.8..30.0).contains(&held), "{quiet:?}");
    assert_eq!(one(&facts, "renewed"), "600.0");
    assert!(
        one(&facts, "after_unsubscribe").starts_with("fault"),
        "{facts:?}"
    );
    assert!(!facts.contains_key("subscription_lost"), "{facts:?}");
}

#[test]
fn a_wrong_password_is_an_authentication_error_to_home_assistant() {
    let d = camera(&format!("[auth]\n{ADMIN}"));
    let facts = home_assistant(&d, "admin", "wrong");
    // The clock and capabilities are answered before the login...
    assert_eq!(
        one(&facts, "media_xaddr"),
        d.http_url("/onvif/media_service")
    );
    // ...then the device information is refused, as wrong credentials.
    let fault = one(&facts, "fault");
    assert!(fault.starts_with("auth "), "{fault}");
    assert!(!facts.contains_key("profile"), "{facts:?}");
    assert!(
        d.log().contains("authentication failed for user \"admin\""),
        "{}",
        d.log()
    );
    // Without users, anyone may add the camera (Home Assistant sends an
    // empty user and password then).
    let open = camera("");
    let facts = home_assistant(&open, "", "");
    assert!(!facts.contains_key("fault"), "{facts:?}");
    assert_eq!(facts["profile"].len(), 2, "{facts:?}");
}

#[test]
fn a_client_whose_clock_is_ten_minutes_off_is_refused_and_told_why() {
    let d = camera(&format!("[auth]\n{ADMIN}"));
    // The client's wall clock 10 minutes ahead (libfaketime), as its
    // tokens' Created time then is.
    let lib = crate::clock::libfaketime();
    let facts = home_assistant_with(
        &d,
        "admin",
        "secret",
        &[
            ("LD_PRELOAD", &lib),
            ("FAKETIME", "+10m"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let fault = one(&facts, "fault");
    assert!(fault.starts_with("auth "), "{fault}");
    assert!(
        d.log()
            .contains("more than 5 minutes from this camera's clock (is the camera's or the client's clock wrong?)"),
        "{}",
        d.log()
    );
}

#[test]
fn every_answer_validates_against_onvifs_own_schemas() {
    // tests/onvif/schema_check.py: each operation the camera answers, with
    // the schemas the ONVIF library ships (read from its WSDLs).
    let d = camera("");
    let python = std::env::var("ONVIF_PYTHON")
        .expect("ONVIF_PYTHON must name the Python with onvif-zeep-async: run `ci/test onvif`");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onvif/schema_check.py");
    let out = Command::new("timeout")
        .arg("120")
        .arg(python)
        .arg(script)
        .arg(d.http_url(""))
        .output()
        .expect("running the schema check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the schema check failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let invalid: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("valid "))
        .collect();
    assert!(invalid.is_empty(), "{}", invalid.join("\n"));
    // 15 device, 14 media and 3 event operations, then 4 on a subscription.
    assert_eq!(stdout.lines().count(), 36, "{stdout}");
}

#[test]
fn a_request_without_a_token_logs_in_with_http_digest() {
    // What recorders that use HTTP authentication do: send, get a 401
    // with a challenge, send again with Digest (curl does the same).
    let d = camera(&format!("[auth]\n{ADMIN}"));
    let url = d.http_url("/onvif/device_service");
    let request = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>\
                   <GetDeviceInformation xmlns=\"http://www.onvif.org/ver10/device/wsdl\"/>\
                   </s:Body></s:Envelope>";
    let post = [
        "-H",
        "Content-Type: application/soap+xml",
        "--data-binary",
        request,
    ];
    let (code, headers, body) = curl(&url, &post);
    assert_eq!(code, 401, "{headers}{body}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("www-authenticate: digest realm=\"streamcam\""),
        "{headers}"
    );
    assert!(body.contains("ter:NotAuthorized"), "{body}");
    let with = |login: &str| {
        let mut args = post.to_vec();
        args.extend(["--digest", "-u", login]);
        curl(&url, &args)
    };
    let (code, _, body) = with("admin:wrong");
    assert_eq!(code, 401, "{body}");
    let (code, _, body) = with("admin:secret");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("<tds:Manufacturer>streamcam</tds:Manufacturer>"),
        "{body}"
    );
}

#[test]
fn home_assistant_pulls_motion_as_it_starts_and_ends() {
    // A still grey picture with noise, and a 40x40 white square crossing
    // it from 3 s to 6 s of each 12 s loop (2 % of 320x240).
    const CLIP: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/onvif-motion.y4m");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(
            "color=c=gray:s=320x240:r=10:d=12,noise=alls=6:allf=t[bg];\
             color=c=white:s=40x40:r=10[fg];\
             [bg][fg]overlay=x='if(between(t,3,6),20+(t-3)*80,-100)':y=100:eval=frame:shortest=1",
        )
        .args(["-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", CLIP])
        .status()
        .expect("running ffmpeg");
    assert!(made.success());
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::Y4m(CLIP),
        "\n[onvif]\ndiscovery = false\n[motion]\nhold = 2\n",
    );
    let stdout = client(&d, "ha_motion.py", &["", ""], &[]);
    let alarms: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("event tns1:VideoSource/MotionAlarm "))
        .collect();
    // Told the state, then motion starting and ending.
    let changes: Vec<&str> = alarms
        .iter()
        .filter(|a| a.ends_with(" Changed"))
        .copied()
        .collect();
    assert!(
        alarms.first().is_some_and(|a| a.ends_with(" Initialized"))
            && changes.starts_with(&["true Changed", "false Changed"]),
        "{stdout}\n{}",
        d.log()
    );
    let cells: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("event tns1:RuleEngine/CellMotionDetector/Motion "))
        .filter(|a| a.ends_with(" Changed"))
        .collect();
    assert!(
        cells.starts_with(&["true Changed", "false Changed"]),
        "{stdout}"
    );
    // And the journal says it.
    assert!(d.log().contains("motion: started"), "{}", d.log());
    assert!(d.log().contains("motion: ended after"), "{}", d.log());
}
