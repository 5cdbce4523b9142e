//! Real RTSP clients driven by the tests: ffmpeg/ffprobe, GStreamer's
//! `rtspsrc` and the `retina` crate. Each returns what it decoded.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a client received and decoded.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Decoded pictures.
    pub frames: usize,
    /// Picture size.
    pub width: u32,
    /// Picture size.
    pub height: u32,
    /// When each picture was decoded (relative to the client's start).
    pub arrivals: Vec<Duration>,
    /// Presentation timestamps of the pictures, in the client's time base.
    pub pts: Vec<i64>,
    /// Anything the client reported as an error or warning.
    pub errors: String,
}

impl Decoded {
    /// Pictures per second from the 30th picture to the last but three:
    /// clients buffer the first seconds while probing, and ffmpeg flushes
    /// its decoder's last pictures at once when it stops.
    pub fn rate(&self) -> f64 {
        const SKIP: usize = 30;
        let end = self.arrivals.len().saturating_sub(4);
        match (self.arrivals.get(SKIP), self.arrivals.get(end)) {
            (Some(a), Some(b)) if b > a => (end - SKIP) as f64 / (*b - *a).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Asserts a clean, complete, real-time 1280x720@30 decode of `frames`.
    pub fn assert_clean(&self, client: &str, frames: usize) {
        self.assert_clean_at(client, frames, (1280, 720));
    }

    /// Asserts a clean, complete, real-time decode of `frames` at 30 fps
    /// and `size`.
    pub fn assert_clean_at(&self, client: &str, frames: usize, size: (u32, u32)) {
        self.assert_clean_rate(client, frames, size, 30);
    }

    /// Asserts a clean, complete, real-time decode of `frames` at `size`
    /// and `fps` (within 13%, after the 30th picture).
    pub fn assert_clean_rate(&self, client: &str, frames: usize, size: (u32, u32), fps: usize) {
        self.assert_complete(client, frames, size);
        let rate = self.rate();
        let fps = fps as f64;
        assert!(
            (fps * 0.87..=fps * 1.13).contains(&rate),
            "{client}: {rate:.1} fps, not {fps}"
        );
    }

    /// Asserts a clean, complete decode of `frames` at `size`, time stamps
    /// one frame apart, whatever the pace they arrived at (a player that
    /// buffers while it probes gets its first second or more at once).
    pub fn assert_complete(&self, client: &str, frames: usize, size: (u32, u32)) {
        assert_eq!(self.errors, "", "{client}: decoder errors");
        assert_eq!(self.frames, frames, "{client}: frames decoded ({self:?})");
        assert_eq!((self.width, self.height), size, "{client}: size");
        // Timestamps advance steadily, one frame at a time: no picture is
        // missing in between (a gap shows as a double step).
        let mut steps: Vec<i64> = self.pts.windows(2).map(|w| w[1] - w[0]).collect();
        let uneven = format!("{client}: uneven timestamp steps {steps:?}");
        steps.sort_unstable();
        let median = steps[steps.len() / 2];
        assert!(median > 0, "{uneven}");
        assert!(
            steps.iter().all(|s| *s * 2 > median && *s * 2 < median * 3),
            "{uneven}"
        );
    }
}

/// Runs `cmd`, feeding each stdout line with its arrival time to `line`;
/// kills it after `timeout`. Returns its stderr.
fn run_lines(cmd: &mut Command, timeout: Duration, mut line: impl FnMut(&str, Duration)) -> String {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((l, start.elapsed())).is_err() {
                break;
            }
        }
    });
    let deadline = start + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((l, at)) => line(&l, at),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = err_reader.join().unwrap();
                return format!("timed out after {timeout:?}\n{err}");
            }
        }
    }
    let status = child.wait().unwrap();
    let mut err = err_reader.join().unwrap();
    if !status.success() {
        err.push_str(&format!("\nexit status {status}"));
    }
    err
}

/// Whether a client decodes what it receives or only receives it (cheap:
/// many clients at once on a small machine).
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    /// Depacketize and decode every picture.
    Decode,
    /// Depacketize only.
    Receive,
}

/// Parses one `framecrc` line (stream, dts, pts, duration, size, checksum)
/// or header line into `d`.
fn framecrc_line(d: &mut Decoded, l: &str, at: Duration) {
    if let Some(dims) = l.strip_prefix("#dimensions 0: ") {
        let (w, h) = dims.split_once('x').unwrap();
        d.width = w.trim().parse().unwrap();
        d.height = h.trim().parse().unwrap();
    } else if !l.starts_with('#') {
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        d.pts.push(f[2].parse().unwrap());
        d.arrivals.push(at);
        d.frames += 1;
    }
}

/// Plays `frames` pictures with ffmpeg over `transport` ("udp" or "tcp").
pub fn ffmpeg(url: &str, transport: &str, frames: usize, mode: Mode) -> Decoded {
    let mut d = Decoded::default();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-v", "error"]);
    if url.starts_with("rtsp:") {
        cmd.args(["-rtsp_transport", transport]);
    }
    cmd.args(["-i", url, "-frames:v", &frames.to_string()]);
    if mode == Mode::Receive {
        cmd.args(["-c", "copy"]);
    }
    cmd.args(["-flush_packets", "1", "-f", "framecrc", "-"]);
    let timeout = Duration::from_secs(15 + frames as u64 / 30);
    let errors = run_lines(&mut cmd, timeout, |l, at| framecrc_line(&mut d, l, at));
    d.errors = errors;
    if mode == Mode::Receive && !d.pts.is_empty() {
        // ffmpeg's RTSP demuxer gives the very first packet no timestamp
        // (with any server); framecrc prints 0 for it. Not ours to check.
        d.pts.remove(0);
    }
    d
}

/// ffmpeg as an RTSP server that takes a published stream at `url`
/// (`-rtsp_flags listen`: ANNOUNCE and RECORD), decoding `frames` pictures.
pub fn ffmpeg_listening(url: &str, frames: usize) -> Decoded {
    let mut d = Decoded::default();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-v", "error"])
        .args(["-rtsp_flags", "listen", "-i", url])
        .args(["-frames:v", &frames.to_string()])
        .args(["-flush_packets", "1", "-f", "framecrc", "-"]);
    let timeout = Duration::from_secs(20 + frames as u64 / 30);
    d.errors = run_lines(&mut cmd, timeout, |l, at| framecrc_line(&mut d, l, at));
    d
}

/// Records `frames` pictures with `ffmpeg -c copy` into a Matroska file (as
/// recording setups do), then decodes the recording: every picture must
/// decode. Arrival times are those of the recording, timestamps and
/// pictures those of the decode.
pub fn ffmpeg_copy(url: &str, transport: &str, frames: usize) -> Decoded {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.mkv");
    let mut recorded = Decoded::default();
    let mut rec = Command::new("ffmpeg");
    rec.args([
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-rtsp_transport",
        transport,
    ])
    .args([
        "-i",
        url,
        "-map",
        "0",
        "-c",
        "copy",
        "-frames:v",
        &frames.to_string(),
    ])
    .args(["-flush_packets", "1", "-f", "tee"])
    .arg(format!(
        "[f=matroska]{}|[f=framecrc]pipe\\:1",
        out.display()
    ));
    let rec_errors = run_lines(&mut rec, Duration::from_secs(30), |l, at| {
        framecrc_line(&mut recorded, l, at)
    });
    let mut d = ffmpeg(out.to_str().unwrap(), "tcp", frames, Mode::Decode);
    d.arrivals = recorded.arrivals;
    d.errors = rec_errors + &d.errors;
    d
}

/// What ffprobe reports about the stream: codec, width, height, frame rate.
pub fn ffprobe(url: &str, transport: &str) -> (String, String) {
    let out = Command::new("ffprobe")
        .args(["-hide_banner", "-v", "error", "-rtsp_transport", transport])
        .args([
            "-show_entries",
            "stream=codec_name,profile,width,height,r_frame_rate",
        ])
        .args(["-of", "compact", url])
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Plays `frames` pictures with GStreamer:
/// `rtspsrc ! rtph264depay ! h264parse ! avdec_h264` (no decoder in `Receive` mode).
pub fn gstreamer(url: &str, transport: &str, frames: usize, mode: Mode) -> Decoded {
    let mut d = Decoded::default();
    // gst-launch prints pictures to stdout and errors to stderr: one stream
    // keeps them in order, so an error is known to come before or after the
    // last picture. stdout line-buffered (stdbuf): a block-buffered stdout
    // flushed mid-line around a stderr line would split a caps line.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "exec stdbuf -oL gst-launch-1.0 \"$@\" 2>&1",
        "gst-launch-1.0",
    ])
    .args(["-v", "rtspsrc", &format!("location={url}")])
    .arg(format!("protocols={transport}"))
    // buffer-mode=none: timestamps straight from RTP time (the
    // server's clock, which is what is checked), not from arrival.
    .args([
        "latency=0",
        "buffer-mode=none",
        "!",
        "rtph264depay",
        "!",
        "h264parse",
    ]);
    if mode == Mode::Decode {
        cmd.args(["!", "avdec_h264", "output-corrupt=false"]);
    }
    // identity ends the stream instead of passing buffer number frames + 1.
    cmd.args([
        "!",
        "identity",
        "silent=false",
        &format!("eos-after={}", frames + 1),
    ])
    .args(["!", "fakesink", "sync=false"]);
    // Messages ("ERROR: ..." and its three debug-info lines), each with
    // whether all pictures had arrived when it was printed.
    let mut messages: Vec<(bool, String)> = Vec::new();
    let mut debug_lines = 0;
    // What gst-launch printed besides the pictures (bounded), shown when
    // it named no picture size.
    let mut other_lines = String::new();
    let errors = run_lines(&mut cmd, Duration::from_secs(30), |l, at| {
        // identity's last-message: one "chain" line per picture.
        if l.contains("GstIdentity:identity0: last-message = chain") {
            let pts = l.split("pts: ").nth(1).unwrap().split(',').next().unwrap();
            d.pts.push(parse_gst_time(pts));
            d.arrivals.push(at);
            d.frames += 1;
        } else if other_lines.len() < 64 * 1024 {
            other_lines.push_str(l);
            other_lines.push('\n');
        }
        // The picture size from the first caps gst-launch -v reports with
        // one: the parser's, the decoder's, identity's or the sink's pads
        // (which of them it prints, and in what order, varies from run to
        // run; the depayloader's and rtspsrc's caps carry no size), or the
        // caps event identity logs as it passes it on (its last-message,
        // which also carries the pictures' lines: under load gst-launch
        // has been seen to print every picture but none of the pads' caps).
        // The event's caps come escaped (`width\=\(int\)1280\,`).
        let plain = l.replace('\\', "");
        let caps = plain.contains(": caps = ")
            || (plain.contains("GstIdentity:identity0: last-message = event")
                && plain.contains("(type: caps"));
        if caps && plain.contains("width=(int)") && d.width == 0 {
            let num = |key: &str| {
                plain
                    .split(&format!("{key}=(int)"))
                    .nth(1)
                    .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            };
            if let (Some(w), Some(h)) = (num("width"), num("height")) {
                (d.width, d.height) = (w, h);
            }
        }
        if l.starts_with("ERROR") || l.starts_with("WARNING") {
            messages.push((d.frames >= frames, format!("{l}\n")));
        } else if let Some((_, m)) = messages.last_mut() {
            if l == "Additional debug info:" {
                debug_lines = 3;
            }
            if debug_lines > 0 {
                m.push_str(l);
                m.push('\n');
                debug_lines -= 1;
            }
        }
    });
    let (teardown, real): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .partition(|(after_last, m)| *after_last && is_teardown_race(m));
    for (_, m) in &teardown {
        eprintln!(
            "gstreamer/{transport}: after the last picture, GStreamer's known teardown race:\n{m}"
        );
    }
    d.errors = real.into_iter().map(|(_, m)| m).collect();
    if d.frames > 0 && d.width == 0 {
        d.errors.push_str(&format!(
            "no picture size in gst-launch's output:\n{other_lines}"
        ));
    }
    // gst-launch exits 1 after an error in its teardown: that alone is
    // forgiven, any other exit or output counts.
    if teardown.is_empty() || !d.errors.is_empty() || errors != "\nexit status exit status: 1" {
        d.errors.push_str(&errors);
    }
    d
}

/// rtspsrc's PAUSE at shutdown (PLAYING to PAUSED) is cancelled by its own
/// CLOSE (PAUSED to READY); when the cancel lands before the PAUSE is
/// written, libgstrtsp's `writev_bytes` maps the cancelled write (0 bytes
/// written) to "Received end-of-file". The PAUSE never reaches the server,
/// which then gets the TEARDOWN as usual. Nothing a server can change.
pub fn is_teardown_race(message: &str) -> bool {
    message.contains("GstRTSPSrc")
        && message.contains("Could not send message. (Received end-of-file)")
        && (message.contains("gst_rtspsrc_try_send") || message.contains("gst_rtspsrc_pause"))
}

/// "0:00:01.033333333" in nanoseconds.
fn parse_gst_time(s: &str) -> i64 {
    let mut parts = s.trim().split(':');
    let h: i64 = parts.next().unwrap().parse().unwrap();
    let m: i64 = parts.next().unwrap().parse().unwrap();
    let sec: f64 = parts.next().unwrap().parse().unwrap();
    ((h * 3600 + m * 60) as f64 * 1e9 + sec * 1e9).round() as i64
}
