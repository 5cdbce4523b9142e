//! UDP media: one RTP/RTCP socket pair per local address, shared by every
//! UDP session on it, and the one task that sends each access unit to all
//! of those clients and hands the RTCP they send to their sessions.
//!
//! Hand-written hot path (no crate batches datagrams for many destinations
//! out of one shared buffer): an access unit's packets are cut once into
//! runs of back-to-back full-size packets (the FU-A fragments of a
//! picture) and every playing client gets one message per run, gathered
//! from the shared buffer without a copy; with UDP generic segmentation
//! offload (Linux 4.18+) the kernel splits a run into its datagrams. All
//! clients' messages leave in one `sendmmsg`: a picture costs one system
//! call and one task wake-up for all UDP clients, not one per client. A
//! client whose route refuses segmentation gets its packets one message
//! each from then on.
//!
//! Multicast sessions are clients whose address is the server's group:
//! each packet goes to the group once, however many of them play, and
//! their RTCP is thinned so that the group hears one sender report at a
//! time and a BYE only from the last of them.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::SockAddr;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::effect::SessionId;
use super::mount::MountIndex;
use crate::broadcast::{Broadcast, SubscribeError, Subscriber};
use crate::config::MulticastConfig;
use crate::format::rtp::packetizer::{MAX_PACKET, RtpUnit};
use crate::format::rtp::rtcp::{self, MAX_RTCP, SentCounts};
use crate::format::sdp::Track;

/// `UDP_SEGMENT` from `<linux/udp.h>` (not exported by libc for glibc).
const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams the kernel accepts in one segmented message.
const MAX_SEGMENTS: usize = 64;
/// Most messages the kernel takes in one `sendmmsg` (`UIO_MAXIOV`).
const MAX_MESSAGES: usize = 1024;
/// Access units kept for clients that start playing: the picture a PLAY
/// waited for may have gone out to the others before the reply was written.
const BACKLOG: usize = 8;
/// Kernel send buffer of the shared RTP socket: one picture for every
/// client at once (64 clients of a 1 Mbit/s stream's key frame).
const SEND_BUFFER: usize = 2 * 1024 * 1024;
/// Least time between two sender reports to the multicast group (each
/// member's session reports on its own timer).
const GROUP_REPORT_GAP: Duration = Duration::from_secs(1);

/// The UDP media of every session on one local address.
#[derive(Debug)]
pub struct UdpMedia {
    ports: (u16, u16),
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    control: mpsc::UnboundedSender<Control>,
    group: Arc<Mutex<Group>>,
}

/// The multicast members of one local address, for their RTCP.
#[derive(Debug, Default)]
struct Group {
    members: usize,
    last_report: Option<Instant>,
}

/// What sessions tell the fan-out task. Unbounded: each message is a step
/// of a session's life (SETUP, PLAY, PAUSE, its end), at most a few per
/// request, and an end must never be lost.
#[derive(Debug)]
enum Control {
    Add(SessionId, Client),
    Play(SessionId, u16),
    Pause(SessionId),
    Remove(SessionId),
}

impl UdpMedia {
    /// Binds an RTP/RTCP port pair on `ip` and starts the task that sends
    /// `stream` to the sessions added here, until `shutdown`.
    pub async fn start(
        ip: IpAddr,
        stream: Arc<Broadcast>,
        multicast_packets: Arc<AtomicU64>,
        shutdown: watch::Receiver<bool>,
    ) -> io::Result<Arc<Self>> {
        let (rtp, rtcp) = bind_pair(ip).await?;
        let _ = socket2::SockRef::from(&rtp).set_send_buffer_size(SEND_BUFFER);
        let ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
        let (rtp, rtcp) = (Arc::new(rtp), Arc::new(rtcp));
        let (control, rx) = mpsc::unbounded_channel();
        let fanout = Fanout {
            rtp: Arc::clone(&rtp),
            rtcp: Arc::clone(&rtcp),
            multicast_packets,
            stream,
            clients: HashMap::new(),
            feed: None,
            feed_lags: 0,
            backlog: VecDeque::with_capacity(BACKLOG),
        };
        tokio::spawn(fanout.run(rx, shutdown));
        Ok(Arc::new(Self {
            ports,
            rtp,
            rtcp,
            control,
            group: Arc::default(),
        }))
    }

    /// Our RTP and RTCP ports (the `server_port` of the SETUP reply).
    pub fn ports(&self) -> (u16, u16) {
        self.ports
    }

    /// Adds session `id`: media to the client's `rtp` port once it plays,
    /// RTCP from the client (from its `rtcp` port, or its address) to
    /// `rtcp_to`, and what is sent counted in `counts`. The session leaves
    /// when the returned handle is dropped.
    pub fn add(
        &self,
        id: SessionId,
        rtp: SocketAddr,
        rtcp: SocketAddr,
        counts: Arc<SentCounts>,
        rtcp_to: RtcpTo,
    ) -> UdpClient {
        self.join(id, rtp, rtcp, counts, rtcp_to, None)
    }

    /// Adds session `id` as a member of multicast group `m`: the group's
    /// packets go out from here with `m`'s TTL, once for all members. Fails
    /// if the group is of the other IP family than this address.
    pub fn add_multicast(
        &self,
        id: SessionId,
        m: &MulticastConfig,
        counts: Arc<SentCounts>,
        rtcp_to: RtcpTo,
    ) -> io::Result<UdpClient> {
        let ttl = u32::from(m.ttl);
        for socket in [&self.rtp, &self.rtcp] {
            let socket = socket2::SockRef::from(socket.as_ref());
            match (m.group, socket.local_addr()?.as_socket()) {
                (IpAddr::V4(_), Some(SocketAddr::V4(_))) => socket.set_multicast_ttl_v4(ttl)?,
                (IpAddr::V6(_), Some(SocketAddr::V6(_))) => socket.set_multicast_hops_v6(ttl)?,
                _ => {
                    return Err(io::Error::other(format!(
                        "the group {} is not of this address's IP family",
                        m.group
                    )));
                }
            }
        }
        self.group.lock().unwrap().members += 1;
        Ok(self.join(
            id,
            SocketAddr::new(m.group, m.port),
            SocketAddr::new(m.group, m.port + 1),
            counts,
            rtcp_to,
            Some(Arc::clone(&self.group)),
        ))
    }

    fn join(
        &self,
        id: SessionId,
        rtp: SocketAddr,
        rtcp: SocketAddr,
        counts: Arc<SentCounts>,
        rtcp_to: RtcpTo,
        group: Option<Arc<Mutex<Group>>>,
    ) -> UdpClient {
        let client = Client {
            dest: SockAddr::from(rtp),
            rtcp,
            counts,
            rtcp_to,
            state: State::Paused,
            segmentation: true,
            multicast: group.is_some(),
        };
        let _ = self.control.send(Control::Add(id, client));
        UdpClient {
            id,
            control: self.control.clone(),
            rtcp: Arc::clone(&self.rtcp),
            client_rtcp: rtcp,
            group,
        }
    }
}

/// A UDP media's local address, and the stream and track it sends.
type MediaKey = (IpAddr, (MountIndex, Track));

/// The UDP media sockets of a server, one pair per local address clients
/// reach it on and track, made on first use.
#[derive(Debug, Default)]
pub struct UdpMediaTable {
    media: Mutex<HashMap<MediaKey, Arc<UdpMedia>>>,
    multicast_packets: Arc<AtomicU64>,
}

impl UdpMediaTable {
    /// RTP packets sent to multicast groups since the start (each once,
    /// however many clients watch).
    pub fn multicast_packets(&self) -> u64 {
        self.multicast_packets.load(Ordering::Relaxed)
    }

    /// The media of a stream's track (`mount`, track) on local address
    /// `ip`, started if it is the track's first UDP session there.
    pub async fn get(
        &self,
        ip: IpAddr,
        mount: (MountIndex, Track),
        stream: &Arc<Broadcast>,
        shutdown: &watch::Receiver<bool>,
    ) -> io::Result<Arc<UdpMedia>> {
        if let Some(media) = self.media.lock().unwrap().get(&(ip, mount)) {
            return Ok(Arc::clone(media));
        }
        let media = UdpMedia::start(
            ip,
            Arc::clone(stream),
            Arc::clone(&self.multicast_packets),
            shutdown.clone(),
        )
        .await?;
        // Two first sessions at once: the first one in is kept (the other
        // pair's task ends with its last handle).
        Ok(Arc::clone(
            self.media
                .lock()
                .unwrap()
                .entry((ip, mount))
                .or_insert(media),
        ))
    }
}

/// Where RTCP from a session's client goes: to its session, without
/// blocking the UDP task (a session that is not reading loses RTCP, which
/// is what RTCP over UDP is used to).
pub struct RtcpTo(Box<dyn Fn(Vec<u8>) + Send + Sync>);

impl RtcpTo {
    /// RTCP handed to `deliver`, which must not block.
    pub fn new(deliver: impl Fn(Vec<u8>) + Send + Sync + 'static) -> Self {
        Self(Box::new(deliver))
    }

    fn send(&self, packet: Vec<u8>) {
        (self.0)(packet)
    }
}

impl std::fmt::Debug for RtcpTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RtcpTo")
    }
}

/// One session's place in the UDP media; leaves it when dropped.
#[derive(Debug)]
pub struct UdpClient {
    id: SessionId,
    control: mpsc::UnboundedSender<Control>,
    rtcp: Arc<UdpSocket>,
    client_rtcp: SocketAddr,
    /// The multicast members here, if this session is one.
    group: Option<Arc<Mutex<Group>>>,
}

impl UdpClient {
    /// True for a member of the multicast group.
    pub fn is_multicast(&self) -> bool {
        self.group.is_some()
    }

    /// Starts sending at the access unit whose first packet is `seq` (the
    /// one RTP-Info named), or at the next key frame after it.
    pub fn play(&self, seq: u16) {
        let _ = self.control.send(Control::Play(self.id, seq));
    }

    /// Stops sending.
    pub fn pause(&self) {
        let _ = self.control.send(Control::Pause(self.id));
    }

    /// Sends one RTCP packet to the client's RTCP port. A send error is the
    /// client's network's business: it times out if it is gone.
    /// A multicast member's packet goes to the group only if the group has
    /// not just had a sender report, and a BYE only from the last member
    /// (the stream's SSRC is every member's: a BYE ends it for all).
    pub async fn send_rtcp(&self, packet: &[u8]) {
        if let Some(group) = &self.group {
            let mut group = group.lock().unwrap();
            let bye = rtcp::parse_feedback(packet).is_ok_and(|fb| fb.bye);
            let reported = group
                .last_report
                .is_some_and(|t| t.elapsed() < GROUP_REPORT_GAP);
            if (bye && group.members > 1) || (!bye && reported) {
                return;
            }
            group.last_report = Some(Instant::now());
        }
        if let Err(e) = self.rtcp.send_to(packet, self.client_rtcp).await {
            tracing::trace!(dest = %self.client_rtcp, "RTCP send failed: {e}");
        }
    }
}

impl Drop for UdpClient {
    fn drop(&mut self) {
        if let Some(group) = &self.group {
            group.lock().unwrap().members -= 1;
        }
        let _ = self.control.send(Control::Remove(self.id));
    }
}

/// Binds an RTP/RTCP socket pair (even, even + 1) on `ip`.
pub async fn bind_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    let mut last = io::Error::other("no free port pair");
    for _ in 0..32 {
        let first = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = first.local_addr()?.port();
        let pair = if port % 2 == 0 {
            UdpSocket::bind(SocketAddr::new(ip, port + 1))
                .await
                .map(|rtcp| (first, rtcp))
        } else {
            UdpSocket::bind(SocketAddr::new(ip, port - 1))
                .await
                .map(|rtp| (rtp, first))
        };
        match pair {
            Ok(p) => return Ok(p),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Where a client is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Paused,
    /// Playing from the first key frame at or after this sequence number.
    From(u16),
    Sending,
}

#[derive(Debug)]
struct Client {
    dest: SockAddr,
    rtcp: SocketAddr,
    counts: Arc<SentCounts>,
    rtcp_to: RtcpTo,
    state: State,
    /// False once the client's route refused a segmented message.
    segmentation: bool,
    /// A member of the multicast group (`dest` is the group).
    multicast: bool,
}

impl Client {
    /// True if `unit` goes to this client (and it is now sending).
    fn takes(&mut self, unit: &RtpUnit) -> bool {
        match self.state {
            State::Sending => true,
            State::From(seq) if unit.is_idr && seq_at_or_after(unit.first_seq, seq) => {
                self.state = State::Sending;
                true
            }
            State::From(_) | State::Paused => false,
        }
    }
}

/// True if RTP sequence number `a` is `b` or comes after it (RFC 3550
/// arithmetic: within half the number space).
fn seq_at_or_after(a: u16, b: u16) -> bool {
    a.wrapping_sub(b) < 0x8000
}

/// One message of a send: packets `packets` of the unit to `dest`, the
/// address of session `client`.
#[derive(Debug)]
struct Message {
    client: SessionId,
    dest: SockAddr,
    packets: Range<usize>,
}

/// The task's state.
struct Fanout {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    /// RTP packets sent to multicast groups (the server's count).
    multicast_packets: Arc<AtomicU64>,
    stream: Arc<Broadcast>,
    clients: HashMap<SessionId, Client>,
    /// The stream, while any session is here.
    feed: Option<Subscriber>,
    /// The feed's skips to a key frame, as last counted into the clients.
    feed_lags: usize,
    backlog: VecDeque<Arc<RtpUnit>>,
}

impl Fanout {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut rtcp_in = [0u8; MAX_RTCP * 2];
        let rtcp = Arc::clone(&self.rtcp);
        loop {
            tokio::select! {
                _ = crate::service::shutdown::stopped(&mut shutdown) => return,
                c = control.recv() => match c {
                    Some(c) => self.control(c).await,
                    None => return,
                },
                unit = next(&mut self.feed) => match unit {
                    Ok(unit) => {
                        self.count_lags();
                        self.backlog.truncate(BACKLOG - 1);
                        self.backlog.push_front(Arc::clone(&unit));
                        self.send(&unit, None).await;
                    }
                    Err(e @ SubscribeError::TooSlow(_)) => {
                        tracing::warn!("UDP media: {e}; starting again at the next key frame");
                        self.subscribe();
                    }
                    Err(SubscribeError::Closed) => return,
                },
                got = rtcp.recv_from(&mut rtcp_in) => {
                    if let Ok((n, from)) = got {
                        self.route_rtcp(&rtcp_in[..n], from);
                    }
                }
            }
        }
    }

    async fn control(&mut self, control: Control) {
        match control {
            Control::Add(id, client) => {
                self.clients.insert(id, client);
                if self.feed.is_none() {
                    self.subscribe();
                }
            }
            Control::Play(id, seq) => {
                // A second PLAY while sending changes nothing.
                let Some(client) = self.clients.get_mut(&id) else {
                    return;
                };
                if client.state == State::Sending {
                    return;
                }
                // A member joining a group already being sent to gets what
                // the group gets from now on; a replay would reach every
                // member twice.
                let (dest, multicast) = (client.dest.as_socket(), client.multicast);
                let group_sending = multicast
                    && self.clients.values().any(|c| {
                        c.multicast && c.state == State::Sending && c.dest.as_socket() == dest
                    });
                let Some(client) = self.clients.get_mut(&id) else {
                    return;
                };
                if group_sending {
                    client.state = State::Sending;
                    return;
                }
                client.state = State::From(seq);
                // What the others were sent since the unit PLAY named.
                let backlog: Vec<_> = self.backlog.iter().rev().cloned().collect();
                for unit in backlog {
                    self.send(&unit, Some(id)).await;
                }
            }
            Control::Pause(id) => {
                if let Some(client) = self.clients.get_mut(&id) {
                    client.state = State::Paused;
                }
            }
            Control::Remove(id) => {
                self.clients.remove(&id);
                if self.clients.is_empty() {
                    self.feed = None;
                    self.backlog.clear();
                }
            }
        }
    }

    fn subscribe(&mut self) {
        self.feed = Some(self.stream.subscribe());
        self.feed_lags = 0;
    }

    /// A skip of the feed to a key frame is one for every client sending.
    fn count_lags(&mut self) {
        let lags = self.feed.as_ref().map_or(0, Subscriber::lags);
        if lags > self.feed_lags {
            for client in self.clients.values() {
                if client.state == State::Sending {
                    client.counts.lagged();
                }
            }
            self.feed_lags = lags;
        }
    }

    /// Sends `unit` to every client that takes it (or to `only` that one).
    async fn send(&mut self, unit: &RtpUnit, only: Option<SessionId>) {
        let packets: Vec<&[u8]> = unit.packets().collect();
        let runs = runs(&packets);
        let mut messages = Vec::new();
        // Groups this unit goes to already.
        let mut groups: Vec<Option<SocketAddr>> = Vec::new();
        for (id, client) in &mut self.clients {
            if only.is_some_and(|o| o != *id) || !client.takes(unit) {
                continue;
            }
            client.counts.add(unit);
            if client.multicast {
                let group = client.dest.as_socket();
                if groups.contains(&group) {
                    continue;
                }
                groups.push(group);
                self.multicast_packets
                    .fetch_add(u64::from(unit.packet_count), Ordering::Relaxed);
            }
            let message = |packets| Message {
                client: *id,
                dest: client.dest.clone(),
                packets,
            };
            if client.segmentation {
                messages.extend(runs.iter().cloned().map(message));
            } else {
                messages.extend((0..packets.len()).map(|i| message(i..i + 1)));
            }
        }
        let mut done = 0;
        while done < messages.len() {
            let batch = &messages[done..messages.len().min(done + MAX_MESSAGES)];
            let fd = self.rtp.as_raw_fd();
            match self
                .rtp
                .try_io(Interest::WRITABLE, || send_messages(fd, &packets, batch))
            {
                Ok(n) => done += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.rtp.writable().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    self.refused(&batch[0], &packets, e);
                    done += 1;
                }
            }
        }
    }

    /// The first message of a send failed with `e`: a client whose route
    /// cannot segment gets this message's packets, and all later ones, one
    /// by one; any other error is the client's network's business.
    fn refused(&mut self, message: &Message, packets: &[&[u8]], e: io::Error) {
        let Some(client) = self.clients.get_mut(&message.client) else {
            return;
        };
        let Some(dest) = message.dest.as_socket() else {
            return;
        };
        if message.packets.len() > 1 && client.segmentation {
            tracing::debug!(%dest, "UDP segmentation refused ({e}); sending packets one by one");
            client.segmentation = false;
            for packet in &packets[message.packets.clone()] {
                let _ = self.rtp.try_send_to(packet, dest);
            }
        } else {
            tracing::trace!(%dest, "RTP send failed: {e}");
        }
    }

    /// Hands RTCP from `from` to its session: the client that sends from
    /// the RTCP port it gave, or the one client at that address.
    fn route_rtcp(&self, data: &[u8], from: SocketAddr) {
        let client = self.clients.values().find(|c| c.rtcp == from).or_else(|| {
            let mut at = self.clients.values().filter(|c| c.rtcp.ip() == from.ip());
            at.next().filter(|_| at.next().is_none())
        });
        match client {
            Some(c) => {
                c.rtcp_to.send(data.to_vec());
            }
            None => tracing::trace!(%from, "RTCP from no session's client"),
        }
    }
}

/// The next access unit of `feed`; pending forever without one.
async fn next(feed: &mut Option<Subscriber>) -> Result<Arc<RtpUnit>, SubscribeError> {
    match feed {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// Cuts an access unit's packets into runs that one segmented message can
/// carry: full-size packets, then at most one shorter one.
fn runs(packets: &[&[u8]]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for (i, packet) in packets.iter().enumerate() {
        if packet.len() < MAX_PACKET || i + 1 - start == MAX_SEGMENTS {
            runs.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < packets.len() {
        runs.push(start..packets.len());
    }
    runs
}

/// One `sendmmsg` of `messages` on the unconnected socket `fd`; returns
/// how many the kernel took (an error only if it took none).
fn send_messages(fd: libc::c_int, packets: &[&[u8]], messages: &[Message]) -> io::Result<usize> {
    let iovecs: Vec<libc::iovec> = packets
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr().cast_mut().cast(),
            iov_len: p.len(),
        })
        .collect();
    let mut control = SegmentControl::new();
    let control_ptr: *mut libc::c_void = (&raw mut control).cast();
    let mut headers: Vec<libc::mmsghdr> = messages
        .iter()
        .map(|m| {
            // SAFETY: zeroed is a valid msghdr (null pointers, zero lengths).
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = m.dest.as_ptr().cast_mut().cast();
            h.msg_namelen = m.dest.len();
            h.msg_iov = iovecs[m.packets.clone()].as_ptr().cast_mut();
            h.msg_iovlen = m.packets.len() as _;
            if m.packets.len() > 1 {
                h.msg_control = control_ptr;
                h.msg_controllen = SegmentControl::space() as _;
            }
            libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: every header points into `iovecs`, `packets`, `messages`
    // (borrowed for the call) and `control`, all alive until the call
    // returns; the kernel only reads them (and writes `msg_len`).
    let n = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), headers.len() as _, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The control message that asks for segmentation at [`MAX_PACKET`]: a
/// `cmsghdr` followed by the segment size (`CMSG_DATA` is right after the
/// header on every Linux target), with room for `CMSG_SPACE`'s padding.
#[repr(C)]
struct SegmentControl {
    header: libc::cmsghdr,
    size: u16,
    _pad: [u8; 6],
}

impl SegmentControl {
    /// The message's length with its padding, as `msg_controllen`.
    fn space() -> u32 {
        // SAFETY: CMSG_SPACE only computes a length.
        unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) }
    }

    fn new() -> Self {
        // SAFETY: CMSG_LEN only computes a length.
        let len = unsafe { libc::CMSG_LEN(size_of::<u16>() as u32) };
        // SAFETY: zeroed is a valid cmsghdr; its fields are set below.
        let mut header: libc::cmsghdr = unsafe { std::mem::zeroed() };
        header.cmsg_level = libc::SOL_UDP;
        header.cmsg_type = UDP_SEGMENT;
        header.cmsg_len = len as _;
        Self {
            header,
            size: MAX_PACKET as u16,
            _pad: [0; 6],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::*;
    use crate::format::h264::AccessUnit;
    use crate::servers::rtsp::session::{Command, rtcp_to};

    /// SPS, PPS, a 5000-byte slice (four FU-A fragments) and a small one.
    fn idr() -> AccessUnit {
        let nals = vec![
            Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]),
            Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            Bytes::from(vec![0x65; 5000]),
            Bytes::from(vec![0x41; 300]),
        ];
        AccessUnit::new(nals, Instant::now())
    }

    async fn receive(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while got.len() < count {
            let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
                .await
                .expect("a datagram")
                .unwrap();
            got.push(buf[..n].to_vec());
        }
        got
    }

    #[test]
    fn runs_end_at_short_packets() {
        let full = [0u8; MAX_PACKET];
        let p: Vec<&[u8]> = vec![
            &[0; 16], &[0; 16], &full, &full, &full, &[0; 100], &[0; 300],
        ];
        assert_eq!(runs(&p), [0..1, 1..2, 2..6, 6..7]);
        let long: Vec<&[u8]> = vec![&full; MAX_SEGMENTS + 2];
        assert_eq!(
            runs(&long),
            [0..MAX_SEGMENTS, MAX_SEGMENTS..MAX_SEGMENTS + 2]
        );
    }

    #[test]
    fn sequence_numbers_compare_across_the_wrap() {
        assert!(seq_at_or_after(5, 5));
        assert!(seq_at_or_after(6, 5));
        assert!(seq_at_or_after(2, 65530));
        assert!(!seq_at_or_after(65530, 2));
        assert!(!seq_at_or_after(4, 5));
    }

    #[tokio::test]
    async fn every_playing_client_gets_every_packet_in_order_and_its_rtcp_is_routed() {
        let (_stop, shutdown) = watch::channel(false);
        let stream = Broadcast::new();
        let ip = "127.0.0.1".parse().unwrap();
        let media = UdpMedia::start(ip, Arc::clone(&stream), Arc::default(), shutdown)
            .await
            .unwrap();
        let (rtp_port, rtcp_port) = media.ports();
        assert_eq!((rtp_port % 2, rtcp_port), (0, rtp_port + 1));
        let mut clients = Vec::new();
        for n in 1..=3 {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let counts = Arc::new(SentCounts::default());
            let (commands, rx) = mpsc::channel(4);
            let addr = socket.local_addr().unwrap();
            let client = media.add(
                SessionId(n),
                addr,
                addr,
                Arc::clone(&counts),
                rtcp_to(&commands),
            );
            clients.push((socket, counts, client, rx));
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // the task subscribes
        let mut watch = stream.subscribe();
        stream.publish(idr());
        let unit = watch.next().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await; // sent to no one yet
        // Two clients play from the key frame, which already went out: they
        // get it from the backlog. The third stays paused.
        for (_, _, client, _) in &clients[..2] {
            client.play(unit.first_seq);
        }
        let sent: Vec<Vec<u8>> = unit.packets().map(<[u8]>::to_vec).collect();
        for (socket, counts, _, _) in &clients[..2] {
            let got = receive(socket, 7).await;
            let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
            assert_eq!(sizes[2..5], [MAX_PACKET; 3], "segmented at MAX_PACKET");
            assert_eq!(got, sent, "the packets, byte for byte, in order");
            assert_eq!(counts.sent().0, 7);
        }
        stream.publish(AccessUnit::new(
            vec![Bytes::from(vec![0x41; 200])],
            Instant::now(),
        ));
        let next = watch.next().await.unwrap();
        for (socket, _, _, _) in &clients[..2] {
            let got = receive(socket, 1).await;
            assert_eq!(u16::from_be_bytes([got[0][2], got[0][3]]), next.first_seq);
        }
        let (paused, counts, _, rx) = &mut clients[2];
        let mut buf = [0u8; 2048];
        assert!(
            paused.try_recv(&mut buf).is_err(),
            "a paused client gets nothing"
        );
        assert_eq!(counts.sent().0, 0);
        // RTCP from a client's port reaches its session.
        paused
            .send_to(b"rtcp", ("127.0.0.1", rtcp_port))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        assert!(matches!(got, Ok(Some(Command::Rtcp(d))) if d == b"rtcp"));
    }

    #[tokio::test]
    async fn a_group_gets_each_packet_once_and_hears_one_report_and_only_the_last_bye() {
        let (_stop, shutdown) = watch::channel(false);
        let stream = Broadcast::new();
        let to_groups = Arc::new(AtomicU64::new(0));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let media = UdpMedia::start(ip, Arc::clone(&stream), Arc::clone(&to_groups), shutdown)
            .await
            .unwrap();
        // The group: a port pair here (the fan-out sends to whatever
        // address the group is; a real group needs a multicast route).
        let (group_rtp, group_rtcp) = bind_pair(ip).await.unwrap();
        let m = MulticastConfig {
            group: ip,
            port: group_rtp.local_addr().unwrap().port(),
            ttl: 1,
        };
        let mut members = Vec::new();
        for n in 1..=2 {
            let counts = Arc::new(SentCounts::default());
            let (commands, rx) = mpsc::channel(4);
            let member = media
                .add_multicast(SessionId(n), &m, Arc::clone(&counts), rtcp_to(&commands))
                .unwrap();
            assert!(member.is_multicast());
            members.push((member, counts, rx));
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // the task subscribes
        let mut watch = stream.subscribe();
        stream.publish(idr());
        let unit = watch.next().await.unwrap();
        // The first member plays from the backlog; the second joins a group
        // already being sent to and gets no replay.
        members[0].0.play(unit.first_seq);
        let got = receive(&group_rtp, 7).await;
        let sent: Vec<Vec<u8>> = unit.packets().map(<[u8]>::to_vec).collect();
        assert_eq!(got, sent);
        members[1].0.play(unit.first_seq);
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream.publish(AccessUnit::new(
            vec![Bytes::from(vec![0x41; 200])],
            Instant::now(),
        ));
        let next = watch.next().await.unwrap();
        let got = receive(&group_rtp, 1).await;
        assert_eq!(u16::from_be_bytes([got[0][2], got[0][3]]), next.first_seq);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 2048];
        assert!(group_rtp.try_recv(&mut buf).is_err(), "no packet twice");
        assert_eq!(to_groups.load(Ordering::Relaxed), 8, "8 packets, once each");
        assert_eq!((members[0].1.sent().0, members[1].1.sent().0), (8, 1));
        // Both members' reports within a second: the group hears one.
        let info = rtcp::SenderInfo {
            ssrc: 1,
            ntp_timestamp: 0,
            rtp_timestamp: 0,
            packet_count: 8,
            octet_count: 0,
        };
        let mut report = [0u8; MAX_RTCP];
        let n = rtcp::write_report(&mut report, &info, "streamcam", false);
        let mut bye = [0u8; MAX_RTCP];
        let b = rtcp::write_report(&mut bye, &info, "streamcam", true);
        for (member, _, _) in &members {
            member.send_rtcp(&report[..n]).await;
        }
        assert_eq!(receive(&group_rtcp, 1).await[0], report[..n]);
        // One member of two leaves: its BYE would end the stream for the
        // other, so it is not sent; the last one's is.
        members[0].0.send_rtcp(&bye[..b]).await;
        drop(members.remove(0));
        members[0].0.send_rtcp(&bye[..b]).await;
        assert_eq!(receive(&group_rtcp, 1).await[0], bye[..b]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            group_rtcp.try_recv(&mut buf).is_err(),
            "one report, one BYE"
        );
    }
}
