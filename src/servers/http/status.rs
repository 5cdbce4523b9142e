//! `/`: the status page with the live picture. HTML, CSS and a small
//! script made here, nothing fetched from elsewhere. The script (`page.js`)
//! plays the picture from [`super::live`] and refreshes the figures by
//! fetching this same page again, so each figure is written in one place.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::context::HttpContext;
use crate::broadcast::stats::EncoderInput;
use crate::format::civil::format_utc;
use crate::format::markup::escape;
use crate::pushers::publish::target::State;

/// The live player and the figures' refresh.
const SCRIPT: &str = include_str!("page.js");

/// The page, for a browser that reached the daemon as `host` (the request's
/// Host header, which names the machine as the viewer knows it).
pub fn page(ctx: &HttpContext, host: &str) -> String {
    // When anyone may watch, the WebSocket needs no token either.
    let token = match ctx.rtsp.info.auth {
        Some(_) => ctx.tokens.issue(Instant::now()),
        None => String::new(),
    };
    let name = host_name(host);
    let stream = ctx.rtsp.stream();
    let info = stream.info();
    let totals = ctx.rtsp.sessions.totals();
    let path = &ctx.rtsp.info.mounts[0].path;
    let rtsp = format!("rtsp://{name}:{}{path}", ctx.rtsp_port);
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>streamcam on {0}</title><style>{STYLE}</style></head><body>\
         <h1>streamcam on {0}</h1>\
         <video id=\"live\" muted autoplay playsinline data-token=\"{1}\" data-webrtc=\"{2}\"></video>\
         <p id=\"live-note\" class=\"small\"></p><div id=\"state\">",
        escape(&name),
        escape(&token),
        cfg!(feature = "webrtc"),
    );
    match &info.error {
        None => {
            let _ = write!(
                out,
                "<p class=\"ok\">Streaming {}</p>",
                escape(&info.description)
            );
        }
        Some(e) => {
            let _ = write!(out, "<p class=\"error\">Not streaming: {}</p>", escape(e));
        }
    }
    let errors = stream.stats().recent_errors();
    if !errors.is_empty() {
        out.push_str("<p class=\"small\">Last problems:</p><ul class=\"small\">");
        for (when, error) in errors.iter().rev() {
            let secs = when
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let _ = write!(
                out,
                "<li>{}: {}</li>",
                format_utc(secs, 0).replace(".000", ""),
                escape(error)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</div>");
    let _ = write!(
        out,
        "<h2>Watch elsewhere</h2><p>Open this in VLC, ffplay, OBS, Home Assistant or Frigate:</p>\
         <p><input readonly size=\"48\" value=\"{0}\"></p>",
        escape(&rtsp)
    );
    if let Some(port) = ctx.rtsps_port {
        let _ = write!(
            out,
            "<p>Encrypted: <code>{}</code></p>",
            escape(&format!("rtsps://{name}:{port}{path}"))
        );
    }
    for (mount, sub) in ctx.rtsp.info.mounts.iter().zip(&ctx.rtsp.streams).skip(1) {
        let sub_info = sub.info();
        let _ = write!(
            out,
            "<p>Substream ({}; {} playing): <input readonly size=\"48\" value=\"{}\"></p>",
            escape(sub_info.error.as_ref().unwrap_or(&sub_info.description)),
            sub.clients(),
            escape(&format!("rtsp://{name}:{}{}", ctx.rtsp_port, mount.path))
        );
    }
    let _ = writeln!(
        out,
        "<h2>Now</h2><table id=\"now\">\
         <tr><th>Clients over UDP</th><td>{}</td></tr>\
         <tr><th>Clients over TCP</th><td>{}</td></tr>\
         {}\
         <tr><th>Browsers watching</th><td>{}</td></tr>\
         <tr><th>RTSP clients playing</th><td>{}</td></tr>\
         <tr><th>RTSP sessions since start</th><td>{}</td></tr>\
         <tr><th>Bit rate</th><td>{}</td></tr>\
         <tr><th>Frames into the encoder</th><td>{}</td></tr>\
         <tr><th>Frames sent out</th><td>{}</td></tr>\
         <tr><th>Data sent over RTSP</th><td>{}</td></tr>\
         <tr><th>Open connections</th><td>{} of {}</td></tr>\
         <tr><th>Up for</th><td>{}</td></tr>\
         <tr><th>Passwords</th><td>{}</td></tr>\
         {}</table>\
         <p class=\"small\">Metrics for Prometheus: <a href=\"/metrics\">/metrics</a></p>\
         <script>{SCRIPT}</script></body></html>",
        totals.udp,
        totals.interleaved,
        match &ctx.rtsp.info.multicast {
            Some(m) => format!(
                "<tr><th>Clients by multicast</th><td>{} (group {}:{})</td></tr>",
                totals.multicast, m.group, m.port
            ),
            None => String::new(),
        },
        browsers(ctx),
        stream.clients(),
        totals.sessions,
        stream.stats().bitrate(Instant::now()).map_or_else(
            || "none now".into(),
            |bps| format!("{:.2} Mbit/s", bps as f64 / 1e6)
        ),
        match stream.stats().encoder_input() {
            EncoderInput::ZeroCopy => "zero-copy (read in place from the camera's buffers)",
            EncoderInput::Copied => "copied",
            EncoderInput::None => "none encoded here",
        },
        stream.frames(),
        megabytes(totals.octets),
        ctx.rtsp.admission.open(),
        ctx.rtsp.admission.cap(),
        uptime(ctx.started.elapsed()),
        match &ctx.rtsp.info.auth {
            Some(a) => format!("{} user(s)", a.user_count()),
            None => "none: anyone on the network can watch".into(),
        },
        publishing(ctx),
    );
    out
}

/// A row for each publish target: where to, and how it goes.
fn publishing(ctx: &HttpContext) -> String {
    let mut rows = String::new();
    for target in ctx.publishers.targets() {
        let state = match target.state() {
            State::Connected => format!(
                "sending ({} sent{})",
                megabytes(target.sent_bytes()),
                match target.connects() {
                    1 => String::new(),
                    n => format!(", connected {n} times"),
                }
            ),
            State::Connecting => "connecting".into(),
            State::Retrying { reason } => format!("retrying: {reason}"),
        };
        let _ = write!(
            rows,
            "<tr><th>Publishing to {}</th><td>{}</td></tr>",
            escape(&target.shown),
            escape(&state)
        );
    }
    rows
}

/// Browser viewers, by how they watch.
fn browsers(ctx: &HttpContext) -> String {
    let websocket = ctx.viewers.current();
    #[cfg(feature = "webrtc")]
    return format!(
        "{} ({websocket} by WebSocket, {} by WebRTC)",
        websocket + ctx.whep.current(),
        ctx.whep.current()
    );
    #[cfg(not(feature = "webrtc"))]
    websocket.to_string()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40em;margin:1em auto;padding:0 1em;color:#222}\
video{width:100%;aspect-ratio:16/9;background:#111}\
h1{font-size:1.5em}h2{font-size:1.1em;margin-top:1.5em}.ok{color:#176617}.error{color:#a31515}\
table{border-collapse:collapse}th{text-align:left;font-weight:normal;color:#555;padding:.2em 1em .2em 0}\
input{font:inherit;padding:.3em;width:100%;box-sizing:border-box}.small{font-size:.9em;color:#555}";

/// The host part of a Host header (without its port), or the machine's
/// mDNS name when the header is unusable.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split_once(']').map(|(ip, _)| format!("[{ip}]"))
    } else {
        host.split(':').next().map(str::to_string)
    };
    name.filter(|n| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c))
    })
    .unwrap_or_else(|| "streamcam.local".into())
}

fn megabytes(octets: u64) -> String {
    format!("{:.1} MB", octets as f64 / 1e6)
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s / 60 % 60),
        _ => format!("{} days {} h", s / 86400, s / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_names_the_machine_or_falls_back() {
        assert_eq!(host_name("cam.local:8080"), "cam.local");
        assert_eq!(host_name("192.168.1.9"), "192.168.1.9");
        assert_eq!(host_name("[fe80::1]:8080"), "[fe80::1]");
        assert_eq!(host_name("<script>"), "streamcam.local");
        assert_eq!(host_name(""), "streamcam.local");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn uptime_reads_well() {
        assert_eq!(uptime(Duration::from_secs(59)), "59 s");
        assert_eq!(uptime(Duration::from_secs(3 * 3600 + 125)), "3 h 2 min");
        assert_eq!(uptime(Duration::from_secs(2 * 86400 + 3600)), "2 days 1 h");
    }
}
