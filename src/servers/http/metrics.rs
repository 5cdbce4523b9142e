//! `/metrics`: the daemon's counters in Prometheus' text format (version
//! 0.0.4), read from where each is kept: the stream, the session table,
//! the connections, the users, and the kernel for the process.

use std::fmt::Write as _;

use super::context::HttpContext;
use crate::broadcast::stats::{EncoderInput, Part};
use crate::pushers::publish::target::{State, Target};

/// The metrics page.
pub fn render(ctx: &HttpContext) -> String {
    let mut out = String::with_capacity(2048);
    let stream = ctx.rtsp.stream();
    let totals = ctx.rtsp.sessions.totals();
    let up = u64::from(stream.info().error.is_none());
    metric(
        &mut out,
        "streamcam_streaming",
        "gauge",
        "1 while the camera (or test pattern) and encoder run, 0 while they are being restarted.",
        &[("", up)],
    );
    metric(
        &mut out,
        "streamcam_encoder_zero_copy",
        "gauge",
        "1 while the encoder reads the camera's buffers in place, 0 while frames are copied to it (or nothing is encoded).",
        &[(
            "",
            u64::from(stream.stats().encoder_input() == EncoderInput::ZeroCopy),
        )],
    );
    metric(
        &mut out,
        "streamcam_frames_total",
        "counter",
        "Encoded frames (access units) sent out to the stream.",
        &[("", stream.frames())],
    );
    let stats = stream.stats();
    metric(
        &mut out,
        "streamcam_frames_captured_total",
        "counter",
        "Frames from the camera, test pattern or file (more than streamcam_frames_total by what the encoder dropped or still holds).",
        &[("", stats.captured())],
    );
    metric(
        &mut out,
        "streamcam_encoded_bytes_total",
        "counter",
        "H.264 bytes sent out to the stream (its bit rate is the rate of this).",
        &[("", stats.encoded_bytes())],
    );
    if let Some(motion) = &ctx.motion {
        metric(
            &mut out,
            "streamcam_motion_events_total",
            "counter",
            "Motion events (starts) since the start.",
            &[("", motion.starts())],
        );
        metric(
            &mut out,
            "streamcam_motion_active",
            "gauge",
            "1 while motion is going on.",
            &[("", u64::from(motion.active()))],
        );
        metric(
            &mut out,
            "streamcam_motion_skipped_total",
            "counter",
            "Pictures not analysed for motion because the analysis was still busy with the one before.",
            &[("", motion.skipped())],
        );
    }
    if let Some(sub) = ctx.rtsp.streams.get(1) {
        metric(
            &mut out,
            "streamcam_substream_frames_total",
            "counter",
            "Encoded frames sent out to the substream ([substream]).",
            &[("", sub.frames())],
        );
        metric(
            &mut out,
            "streamcam_substream_encoded_bytes_total",
            "counter",
            "H.264 bytes sent out to the substream.",
            &[("", sub.stats().encoded_bytes())],
        );
        metric(
            &mut out,
            "streamcam_substream_clients",
            "gauge",
            "RTSP clients playing the substream now.",
            &[("", sub.clients() as u64)],
        );
    }
    metric(
        &mut out,
        "streamcam_pipeline_failures_total",
        "counter",
        "Times the camera (source) or the encoder failed and the pipeline was reopened (or given up, for a failure that cannot pass).",
        &[
            ("part=\"source\"", stats.failures(Part::Source)),
            ("part=\"encoder\"", stats.failures(Part::Encoder)),
        ],
    );
    metric(
        &mut out,
        "streamcam_lag_skips_total",
        "counter",
        "Times a viewer fell a second behind the stream and skipped ahead to the next key frame.",
        &[("", stats.lag_skips())],
    );
    metric(
        &mut out,
        "streamcam_slow_viewer_drops_total",
        "counter",
        "Viewers dropped for falling behind again and again.",
        &[("", stats.slow_drops())],
    );
    metric(
        &mut out,
        "streamcam_clients",
        "gauge",
        "Viewers, by how their media travels (tcp: interleaved on the RTSP or RTSPS connection; multicast: the [multicast] group; websocket, webrtc: the status page's live picture).",
        &[
            ("transport=\"udp\"", totals.udp as u64),
            ("transport=\"tcp\"", totals.interleaved as u64),
            ("transport=\"multicast\"", totals.multicast as u64),
            ("transport=\"websocket\"", ctx.viewers.current() as u64),
            #[cfg(feature = "webrtc")]
            ("transport=\"webrtc\"", ctx.whep.current() as u64),
        ],
    );
    metric(
        &mut out,
        "streamcam_playing_clients",
        "gauge",
        "RTSP sessions that are playing.",
        &[("", stream.clients() as u64)],
    );
    metric(
        &mut out,
        "streamcam_sessions_total",
        "counter",
        "RTSP sessions set up.",
        &[("", totals.sessions)],
    );
    metric(
        &mut out,
        "streamcam_sent_packets_total",
        "counter",
        "RTP packets sent to clients.",
        &[("", totals.packets)],
    );
    metric(
        &mut out,
        "streamcam_multicast_sent_packets_total",
        "counter",
        "RTP packets sent to the multicast group: each once, however many clients watch it (they count in streamcam_sent_packets_total each).",
        &[("", ctx.rtsp.udp.multicast_packets())],
    );
    metric(
        &mut out,
        "streamcam_sent_bytes_total",
        "counter",
        "RTP payload bytes sent to clients.",
        &[("", totals.octets)],
    );
    metric(
        &mut out,
        "streamcam_websocket_viewers_total",
        "counter",
        "Live pictures opened by browsers.",
        &[("", ctx.viewers.total())],
    );
    metric(
        &mut out,
        "streamcam_websocket_sent_bytes_total",
        "counter",
        "Fragmented MP4 bytes sent to browsers.",
        &[("", ctx.viewers.sent_bytes())],
    );
    metric(
        &mut out,
        "streamcam_snapshot_requests_total",
        "counter",
        "Requests for /snapshot.jpg.",
        &[("", ctx.stills.requests())],
    );
    metric(
        &mut out,
        "streamcam_snapshot_encodes_total",
        "counter",
        "JPEGs encoded for /snapshot.jpg (at most one a second for each size asked for).",
        &[("", ctx.stills.encodes())],
    );
    metric(
        &mut out,
        "streamcam_connections",
        "gauge",
        "Open RTSP, RTSPS and HTTP connections.",
        &[("", ctx.rtsp.admission.open() as u64)],
    );
    metric(
        &mut out,
        "streamcam_connections_max",
        "gauge",
        "Most connections open at once; at the limit the oldest without a session is closed.",
        &[("", ctx.rtsp.admission.cap() as u64)],
    );
    if let Some(auth) = &ctx.rtsp.info.auth {
        metric(
            &mut out,
            "streamcam_auth_failures_total",
            "counter",
            "Requests refused for a wrong user name or password (RTSP and HTTP).",
            &[("", auth.failures())],
        );
    }
    publishing(&mut out, ctx);
    process(&mut out);
    out
}

/// The publish targets' metrics, labelled by their place in `[[publish]]`.
fn publishing(out: &mut String, ctx: &HttpContext) {
    let targets = ctx.publishers.targets();
    if targets.is_empty() {
        return;
    }
    let labels: Vec<String> = targets
        .iter()
        .map(|t| format!("target=\"{}\"", t.index))
        .collect();
    let of = |value: &dyn Fn(&Target) -> u64| -> Vec<(&str, u64)> {
        labels
            .iter()
            .zip(targets)
            .map(|(l, t)| (l.as_str(), value(t)))
            .collect()
    };
    metric(
        out,
        "streamcam_publish_up",
        "gauge",
        "1 while the stream flows to the [[publish]] target, 0 while it is being (re)connected.",
        &of(&|t| u64::from(t.state() == State::Connected)),
    );
    metric(
        out,
        "streamcam_publish_connects_total",
        "counter",
        "Connections made to the [[publish]] target (more than one: it was lost and reconnected).",
        &of(&|t| t.connects()),
    );
    metric(
        out,
        "streamcam_publish_sent_bytes_total",
        "counter",
        "Bytes sent to the [[publish]] target.",
        &of(&|t| t.sent_bytes()),
    );
}

/// One metric family: its HELP and TYPE lines and one sample per label set
/// ("" for none).
fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The standard `process_*` metrics, from /proc/self.
fn process(out: &mut String) {
    let Some(p) = ProcessStats::read() else {
        return;
    };
    let mut float = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    float(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent, in seconds.",
        p.cpu_seconds,
    );
    float(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size, in bytes.",
        p.resident_bytes as f64,
    );
    float(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
        p.start_time,
    );
    float(
        "process_open_fds",
        "gauge",
        "Open file descriptors.",
        p.open_fds as f64,
    );
    float(
        "process_max_fds",
        "gauge",
        "Most file descriptors the process may open.",
        p.max_fds as f64,
    );
}

/// What the kernel says of this process.
#[derive(Debug, Clone, Copy)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    start_time: f64,
    open_fds: usize,
    max_fds: u64,
}

impl ProcessStats {
    // rlim_t is u32 on 32-bit targets (the Pi's armv7), u64 elsewhere.
    #[allow(clippy::useless_conversion)]
    fn read() -> Option<Self> {
        // CPU time and resident memory from getrusage and statm, which
        // qemu-user (the emulated tests) passes through; its /proc/self/stat
        // is made up and has zeros there. The start time is from that file.
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name, which may hold spaces and
        // parentheses: field 3 (state) is the first.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let started_ticks = fields.get(22 - 3)?.parse::<u64>().ok()?;
        // SAFETY: sysconf only reads a constant of the system.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let ticks = u64::try_from(ticks).ok().filter(|&t| t > 0)? as f64;
        let page = u64::try_from(page).ok()?;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let resident_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()?;
        // SAFETY: getrusage and getrlimit write the one struct they are given.
        let (usage, limit) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let mut limit: libc::rlimit = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0
                || libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0
            {
                return None;
            }
            (usage, limit)
        };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Some(Self {
            cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            resident_bytes: resident_pages * page,
            start_time: boot as f64 + started_ticks as f64 / ticks,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count(),
            max_fds: u64::from(limit.rlim_cur),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_this_process() {
        let p = ProcessStats::read().unwrap();
        assert!(p.resident_bytes > 100_000, "{p:?}");
        assert!(p.open_fds >= 3 && p.max_fds >= p.open_fds as u64, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time <= now + 1.0 && p.start_time > now - 3600.0,
            "{p:?}"
        );
        assert!(p.cpu_seconds >= 0.0);
    }

    #[test]
    fn samples_are_written_with_and_without_labels() {
        let mut out = String::new();
        metric(&mut out, "x_total", "counter", "X.", &[("", 3)]);
        metric(
            &mut out,
            "y",
            "gauge",
            "Y.",
            &[("a=\"b\"", 1), ("a=\"c\"", 2)],
        );
        assert_eq!(
            out,
            "# HELP x_total X.\n# TYPE x_total counter\nx_total 3\n\
             # HELP y Y.\n# TYPE y gauge\ny{a=\"b\"} 1\ny{a=\"c\"} 2\n"
        );
    }
}
