//! Load generator for `bench/run`: opens N RTSP sessions to one server over
//! UDP or TCP, receives for a fixed window, and prints what each client got
//! next to the server process's CPU time and peak memory over that window.
//!
//! A bare RTSP/RTP receiver, hand-written so that the load itself costs as
//! little CPU as possible: it counts packets, sequence gaps and frames
//! (marker bits) and decodes nothing. Latency: each access unit's capture
//! time is read from the server's RTCP sender reports (their NTP time and
//! RTP timestamp map one onto the other) and compared with the wall-clock
//! time its last packet (the marker) arrives; client and server share the
//! machine's clock.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Parser)]
struct Args {
    /// rtsp://host:port/path
    url: String,
    /// Number of clients.
    #[arg(long)]
    clients: usize,
    /// udp or tcp.
    #[arg(long)]
    transport: String,
    /// Server process to measure.
    #[arg(long)]
    pid: u32,
    /// Seconds between the last PLAY and the start of the window.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Length of the measured window in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Milliseconds between two clients' starts (a burst of simultaneous
    /// connections is a different test).
    #[arg(long, default_value_t = 50)]
    stagger_ms: u64,
}

/// What one client saw inside the window.
#[derive(Default, Clone)]
struct Counts {
    packets: u64,
    lost: u64,
    frames: u64,
    first_frame: Option<Duration>,
    /// Capture to last packet of each access unit, in milliseconds.
    latencies: Vec<f64>,
}

/// RTP clock rate of H.264 video.
const RTP_CLOCK: f64 = 90_000.0;
/// Largest difference in seconds between a sender report's NTP time and
/// the wall clock when it arrives, for the report to map capture times.
const MAX_REPORT_AGE: f64 = 0.5;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: f64 = 2_208_988_800.0;

/// Now as NTP seconds.
fn ntp_now() -> f64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    unix.as_secs_f64() + NTP_UNIX_OFFSET
}

/// The NTP time (seconds) and RTP timestamp of a sender report in `rtcp`
/// (the first packet of a compound one).
fn sender_report(rtcp: &[u8]) -> Option<(f64, u32)> {
    if rtcp.len() < 20 || rtcp[1] != 200 {
        return None;
    }
    let secs = u32::from_be_bytes(rtcp[8..12].try_into().ok()?);
    let frac = u32::from_be_bytes(rtcp[12..16].try_into().ok()?);
    let rtp = u32::from_be_bytes(rtcp[16..20].try_into().ok()?);
    Some((f64::from(secs) + f64::from(frac) / 4_294_967_296.0, rtp))
}

/// The measured window, set once every client plays.
type Window = Arc<OnceLock<(Instant, Instant)>>;

struct Receiver {
    counts: Counts,
    last_seq: Option<u16>,
    window: Window,
    play_sent: Instant,
    /// The last sender report's NTP time and RTP timestamp.
    report: Option<(f64, u32)>,
}

impl Receiver {
    /// Takes a sender report whose NTP time is the wall clock's (a report
    /// carries the time it was sent). A server whose reports run on
    /// another clock (gst-rtsp-server's pipeline clock) gives no latency.
    fn rtcp(&mut self, rtcp: &[u8]) {
        if let Some(report) = sender_report(rtcp) {
            if (ntp_now() - report.0).abs() < MAX_REPORT_AGE {
                self.report = Some(report);
            }
        }
    }

    fn packet(&mut self, rtp: &[u8]) {
        if rtp.len() < 12 {
            return;
        }
        let seq = u16::from_be_bytes([rtp[2], rtp[3]]);
        let marker = rtp[1] & 0x80 != 0;
        if marker && self.counts.first_frame.is_none() {
            self.counts.first_frame = Some(self.play_sent.elapsed());
        }
        let Some(&(start, end)) = self.window.get() else {
            self.last_seq = Some(seq);
            return;
        };
        let now = Instant::now();
        if now >= start && now < end {
            if let Some(last) = self.last_seq {
                let gap = seq.wrapping_sub(last.wrapping_add(1));
                if gap < 0x8000 {
                    self.counts.lost += u64::from(gap);
                }
            }
            self.counts.packets += 1;
            self.counts.frames += u64::from(marker);
            if let (true, Some((ntp, at))) = (marker, self.report) {
                let ts = u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]);
                let captured = ntp + f64::from(ts.wrapping_sub(at) as i32) / RTP_CLOCK;
                self.counts.latencies.push((ntp_now() - captured) * 1000.0);
            }
        }
        self.last_seq = Some(seq);
    }
}

/// Reads one RTSP response off `conn` (keeping any bytes after it in `buf`).
async fn response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<String> {
    loop {
        // Interleaved packets may come ahead of a reply: skip them.
        while buf.len() >= 4 && buf[0] == b'$' {
            let len = 4 + u16::from_be_bytes([buf[2], buf[3]]) as usize;
            if buf.len() < len {
                break;
            }
            buf.drain(..len);
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                buf.drain(..end + 4 + len);
                return Ok(format!("{head}\r\n\r\n{body}"));
            }
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

async fn request(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    cseq: &mut u32,
    method: &str,
    url: &str,
    extra: &str,
) -> std::io::Result<String> {
    *cseq += 1;
    let req =
        format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: rtsp-load\r\n{extra}\r\n");
    conn.write_all(req.as_bytes()).await?;
    let r = response(conn, buf).await?;
    if !r.starts_with("RTSP/1.0 200") {
        return Err(std::io::Error::other(format!(
            "{method}: {}",
            r.lines().next().unwrap_or("")
        )));
    }
    Ok(r)
}

async fn udp_pair() -> std::io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..200 {
        let rtp = UdpSocket::bind("127.0.0.1:0").await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)).await {
            let _ = socket2::SockRef::from(&rtp).set_recv_buffer_size(1 << 20);
            return Ok((rtp, rtcp));
        }
    }
    Err(std::io::Error::other("no even/odd UDP port pair"))
}

/// One client: sets up, plays, then receives until the window closes.
async fn client(
    url: String,
    udp: bool,
    window: Window,
    playing: tokio::sync::mpsc::Sender<()>,
) -> std::io::Result<Counts> {
    let host = url.trim_start_matches("rtsp://").split('/').next().unwrap();
    let addr: SocketAddr = host.parse().map_err(std::io::Error::other)?;
    let mut conn = TcpStream::connect(addr).await?;
    let mut buf = Vec::new();
    let mut cseq = 0;
    let describe = request(
        &mut conn,
        &mut buf,
        &mut cseq,
        "DESCRIBE",
        &url,
        "Accept: application/sdp\r\n",
    )
    .await?;
    let base = header(&describe, "content-base").map_or(format!("{url}/"), str::to_string);
    let control = describe
        .lines()
        .filter_map(|l| l.strip_prefix("a=control:"))
        .map(str::trim)
        .find(|c| *c != "*")
        .unwrap_or("")
        .to_string();
    let track = if control.starts_with("rtsp://") {
        control
    } else {
        format!("{base}{control}")
    };
    let pair = if udp { Some(udp_pair().await?) } else { None };
    let transport = match &pair {
        Some((rtp, _)) => {
            let p = rtp.local_addr()?.port();
            format!("RTP/AVP;unicast;client_port={p}-{}", p + 1)
        }
        None => "RTP/AVP/TCP;unicast;interleaved=0-1".to_string(),
    };
    let setup = request(
        &mut conn,
        &mut buf,
        &mut cseq,
        "SETUP",
        &track,
        &format!("Transport: {transport}\r\n"),
    )
    .await?;
    let session = header(&setup, "session")
        .and_then(|s| s.split(';').next())
        .ok_or_else(|| std::io::Error::other("no Session"))?
        .to_string();
    let play_sent = Instant::now();
    request(
        &mut conn,
        &mut buf,
        &mut cseq,
        "PLAY",
        &base,
        &format!("Session: {session}\r\nRange: npt=0.000-\r\n"),
    )
    .await?;
    let _ = playing.send(()).await;
    let mut rx = Receiver {
        counts: Counts::default(),
        last_seq: None,
        window: Arc::clone(&window),
        play_sent,
        report: None,
    };
    let done = |w: &Window| w.get().is_some_and(|(_, end)| Instant::now() >= *end);
    match pair {
        Some((rtp, rtcp)) => {
            let mut pkt = [0u8; 2048];
            let mut report = [0u8; 2048];
            while !done(&window) {
                tokio::select! {
                    got = rtp.recv(&mut pkt) => if let Ok(n) = got { rx.packet(&pkt[..n]) },
                    got = rtcp.recv(&mut report) => if let Ok(n) = got { rx.rtcp(&report[..n]) },
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
        None => {
            let mut chunk = vec![0u8; 65536];
            while !done(&window) {
                while buf.len() >= 4 && buf[0] == b'$' {
                    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                    if buf.len() < 4 + len {
                        break;
                    }
                    match buf[1] {
                        0 => rx.packet(&buf[4..4 + len]),
                        1 => rx.rtcp(&buf[4..4 + len]),
                        _ => {}
                    }
                    buf.drain(..4 + len);
                }
                if !buf.is_empty() && buf[0] != b'$' {
                    // An RTSP message on the connection: skip it.
                    let _ = response(&mut conn, &mut buf).await?;
                    continue;
                }
                match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut chunk)).await
                {
                    Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {}
                }
            }
        }
    }
    Ok(rx.counts)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Peak resident memory of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let udp = args.transport == "udp";
    let window: Window = Arc::new(OnceLock::new());
    let (tx, mut rx) = tokio::sync::mpsc::channel(args.clients);
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        tasks.push(tokio::spawn(client(
            args.url.clone(),
            udp,
            Arc::clone(&window),
            tx.clone(),
        )));
        tokio::time::sleep(Duration::from_millis(args.stagger_ms)).await;
    }
    drop(tx);
    let mut started = 0;
    let setup_deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(setup_deadline);
    while started < args.clients {
        tokio::select! {
            got = rx.recv() => match got { Some(()) => started += 1, None => break },
            _ = &mut setup_deadline => break,
        }
    }
    let start = Instant::now() + Duration::from_secs(args.warmup);
    let end = start + Duration::from_secs(args.seconds);
    let _ = window.set((start, end));
    tokio::time::sleep_until(start.into()).await;
    let cpu0 = cpu_seconds(args.pid);
    tokio::time::sleep_until(end.into()).await;
    let cpu = cpu_seconds(args.pid) - cpu0;
    let rss = peak_rss_kib(args.pid);
    let mut results = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(5), t).await {
            Ok(Ok(Ok(c))) => results.push(c),
            Ok(Ok(Err(e))) => {
                eprintln!("rtsp-load: client failed: {e}");
                failed += 1;
            }
            _ => failed += 1,
        }
    }
    let n = results.len().max(1) as f64;
    let frames_min = results.iter().map(|c| c.frames).min().unwrap_or(0);
    let frames_avg = results.iter().map(|c| c.frames).sum::<u64>() as f64 / n;
    let packets: u64 = results.iter().map(|c| c.packets).sum();
    let lost: u64 = results.iter().map(|c| c.lost).sum();
    let loss = 100.0 * lost as f64 / (packets + lost).max(1) as f64;
    let first: Vec<f64> = results
        .iter()
        .filter_map(|c| c.first_frame.map(|d| d.as_secs_f64() * 1000.0))
        .collect();
    let first_avg = first.iter().sum::<f64>() / first.len().max(1) as f64;
    let stream_minutes = args.clients as f64 * args.seconds as f64 / 60.0;
    let mut latencies: Vec<f64> = results.iter().flat_map(|c| c.latencies.clone()).collect();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| match latencies.len() {
        0 => "-".to_string(),
        n => format!("{:.2}", latencies[((n - 1) as f64 * p).round() as usize]),
    };
    println!(
        "cpu_s={cpu:.2} cpu_per_stream_min={:.3} peak_rss_mib={:.1} frames_min={frames_min} frames_avg={frames_avg:.1} loss_pct={loss:.3} first_frame_ms={first_avg:.0} latency_p50_ms={} latency_p99_ms={} failed={failed}",
        cpu / stream_minutes,
        rss as f64 / 1024.0,
        percentile(0.5),
        percentile(0.99)
    );
}
