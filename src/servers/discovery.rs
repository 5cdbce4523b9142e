//! WS-Discovery on the local networks (`[onvif]`, `onvif.discovery`): NVRs
//! and Home Assistant multicast a Probe to 239.255.255.250:3702, and the
//! camera answers it, unicast, with where its device service is, on the
//! address of the interface the Probe came in on (read with `IP_PKTINFO`).
//! It says Hello on each network it finds (looked for again every 30 s)
//! and Bye when it stops. The messages are `servers::onvif::discovery`'s;
//! this is the UDP side.
//!
//! Only a Probe from a local network is answered: its sender must be in
//! the subnet of the interface it came in on, so the camera cannot be made
//! to send anything elsewhere. Answers wait a random delay of up to 500 ms
//! (WS-Discovery's, so that cameras do not all answer at once), each
//! MessageID is answered once (clients send each Probe several times), and
//! at most 10 answers leave a second.
//!
//! The port is shared (`SO_REUSEADDR`, `SO_REUSEPORT`) with what else
//! listens on it, such as Samba's wsdd.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::servers::onvif::discovery::{Announcer, MAX_DATAGRAM, Probe, xaddr};

/// WS-Discovery's IPv4 group and port.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// WS-Discovery's port.
pub const PORT: u16 = 3702;
/// Longest wait before an answer.
const MAX_DELAY: Duration = Duration::from_millis(500);
/// How often the interfaces are read again.
const RESCAN: Duration = Duration::from_secs(30);
/// Most answers a second, and the burst allowed.
const ANSWERS_PER_SECOND: f64 = 10.0;
/// MessageIDs remembered, so a Probe sent again is not answered again.
const REMEMBERED: usize = 64;
/// Least time between two log lines about ignored Probes.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// An IPv4 network the camera is on: an interface's address and prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The interface's index.
    pub index: u32,
    /// The interface's address on it.
    pub addr: Ipv4Addr,
    /// The length of its prefix.
    pub prefix: u8,
}

impl Network {
    /// Whether `ip` is on this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix.min(32)))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

/// What to do with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send this answer to the sender.
    Answer(String),
    /// Not a Probe, or one for something else, or one already answered:
    /// nothing to say.
    Nothing,
    /// A Probe from outside the local networks.
    NotLocal,
    /// More answers than allowed this second.
    Limited,
}

/// The decisions, without sockets: which Probe gets which answer.
#[derive(Debug)]
pub struct Responder {
    announcer: Arc<Announcer>,
    http_port: u16,
    seen: VecDeque<String>,
    tokens: f64,
    refilled: Instant,
}

impl Responder {
    /// A responder naming the device service on `http_port`.
    pub fn new(announcer: Arc<Announcer>, http_port: u16, now: Instant) -> Self {
        Self {
            announcer,
            http_port,
            seen: VecDeque::with_capacity(REMEMBERED),
            tokens: ANSWERS_PER_SECOND,
            refilled: now,
        }
    }

    /// What to do with `datagram` from `from`, which came in on the
    /// interface `index`, the camera being on `networks`.
    pub fn decide(
        &mut self,
        datagram: &[u8],
        from: SocketAddrV4,
        index: u32,
        networks: &[Network],
        now: Instant,
    ) -> Verdict {
        let Some(probe) = Probe::parse(datagram) else {
            return Verdict::Nothing;
        };
        let Some(network) = networks
            .iter()
            .find(|n| n.index == index && n.contains(*from.ip()))
        else {
            return Verdict::NotLocal;
        };
        if self.seen.contains(&probe.message_id) || !probe.wants(self.announcer.scopes()) {
            return Verdict::Nothing;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * ANSWERS_PER_SECOND).min(ANSWERS_PER_SECOND);
        self.refilled = now;
        if self.tokens < 1.0 {
            return Verdict::Limited;
        }
        self.tokens -= 1.0;
        if self.seen.len() == REMEMBERED {
            self.seen.pop_front();
        }
        self.seen.push_back(probe.message_id.clone());
        let at = xaddr(IpAddr::V4(network.addr), self.http_port);
        Verdict::Answer(self.announcer.probe_matches(&probe.message_id, &at))
    }
}

/// Answers Probes and says Hello on every local network until `shutdown`
/// turns true, then says Bye. The device service is on `http_port`; when
/// the HTTP side listens on one address (`http_ip`), only its network is
/// served.
pub async fn run(
    announcer: Arc<Announcer>,
    http_ip: IpAddr,
    http_port: u16,
    mut shutdown: watch::Receiver<bool>,
) {
    let socket = match open().and_then(UdpSocket::from_std) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(
                "ONVIF discovery: cannot listen on UDP port {PORT}: {e}; NVRs will not find \
                 the camera by themselves (add it by its address)"
            );
            return;
        }
    };
    let served = |n: &Network| http_ip.is_unspecified() || http_ip == IpAddr::V4(n.addr);
    let mut responder = Responder::new(Arc::clone(&announcer), http_port, Instant::now());
    let mut networks: Vec<Network> = Vec::new();
    let mut rescan = tokio::time::interval(RESCAN);
    let mut last_log: HashMap<&'static str, Instant> = HashMap::new();
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            _ = rescan.tick() => {
                let found: Vec<Network> = match interfaces() {
                    Ok(all) => all.into_iter().filter(|n| served(n)).collect(),
                    Err(e) => {
                        tracing::warn!("ONVIF discovery: cannot read the interfaces: {e}");
                        continue;
                    }
                };
                for net in found.iter().filter(|n| !networks.contains(n)) {
                    join_and_greet(&socket, &announcer, net, http_port);
                }
                networks = found;
            }
            received = socket.async_io(Interest::READABLE, || receive(socket.as_raw_fd())) => {
                let (datagram, from, index) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!("ONVIF discovery: {e}");
                        continue;
                    }
                };
                let Some(from) = from else { continue };
                let verdict = responder.decide(&datagram, from, index, &networks, Instant::now());
                match verdict {
                    Verdict::Answer(answer) => {
                        tracing::debug!(client = %from, "ONVIF discovery: answering a Probe from {from}");
                        let socket = Arc::clone(&socket);
                        let delay = MAX_DELAY.mul_f64(rand::random::<f64>());
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            if let Err(e) = socket.send_to(answer.as_bytes(), from).await {
                                tracing::debug!("ONVIF discovery: cannot answer {from}: {e}");
                            }
                        });
                    }
                    Verdict::Nothing => {}
                    Verdict::NotLocal | Verdict::Limited => {
                        let (key, why) = if verdict == Verdict::NotLocal {
                            ("not local", "it is not from a network this camera is on")
                        } else {
                            ("limited", "more than 10 a second are not answered")
                        };
                        let now = Instant::now();
                        if last_log.get(key).is_none_or(|t| now.duration_since(*t) >= LOG_EVERY) {
                            last_log.insert(key, now);
                            tracing::warn!(
                                client = %from,
                                "ONVIF discovery: a Probe from {from} is not answered: {why} \
                                 (said at most once a minute)"
                            );
                        }
                    }
                }
            }
        }
    }
    for net in &networks {
        send_to_group(&socket, net, &announcer.bye());
    }
}

/// Joins the group on `net`'s interface and says Hello there.
fn join_and_greet(socket: &UdpSocket, announcer: &Announcer, net: &Network, http_port: u16) {
    match socket.join_multicast_v4(GROUP, net.addr) {
        // Joined already (another address of the same interface).
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {}
        Err(e) => {
            tracing::warn!("ONVIF discovery: cannot join {GROUP} on {}: {e}", net.addr);
            return;
        }
    }
    tracing::info!(
        "ONVIF discovery: answering Probes on {}/{}, the device service at {}",
        net.addr,
        net.prefix,
        xaddr(IpAddr::V4(net.addr), http_port)
    );
    send_to_group(
        socket,
        net,
        &announcer.hello(&xaddr(IpAddr::V4(net.addr), http_port)),
    );
}

/// Multicasts `message` on `net`'s interface.
fn send_to_group(socket: &UdpSocket, net: &Network, message: &str) {
    let sock = socket2::SockRef::from(socket);
    let sent = sock
        .set_multicast_if_v4(&net.addr)
        .and_then(|()| sock.send_to(message.as_bytes(), &SocketAddr::from((GROUP, PORT)).into()));
    if let Err(e) = sent {
        tracing::debug!("ONVIF discovery: cannot multicast on {}: {e}", net.addr);
    }
}

/// The shared, non-blocking socket on WS-Discovery's port, telling on
/// which interface each datagram came in.
fn open() -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    set_option(&socket, libc::SOL_SOCKET, libc::SO_REUSEPORT)?;
    set_option(&socket, libc::IPPROTO_IP, libc::IP_PKTINFO)?;
    socket.set_multicast_ttl_v4(1)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)).into())?;
    Ok(socket.into())
}

/// Turns on the boolean socket option `name` (socket2 has neither
/// `SO_REUSEPORT` without its "all" feature nor `IP_PKTINFO`).
fn set_option(socket: &socket2::Socket, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, and a c_int option of its size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One datagram (cut to one byte over `MAX_DATAGRAM`, which no Probe
/// reaches), its IPv4 sender, and the index of the interface it came in on
/// (`IP_PKTINFO`). By hand: std and tokio give no ancillary data.
fn receive(fd: RawFd) -> io::Result<(Vec<u8>, Option<SocketAddrV4>, u32)> {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    // SAFETY: plain C structures, all zero is their empty value.
    let mut from: libc::sockaddr_in = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one in_pktinfo message, aligned as cmsghdr needs.
    let mut control = [0u64; 8];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>() as _;
    // SAFETY: every pointer in msg is to a live buffer of the size given.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    let mut index = 0;
    // SAFETY: the kernel filled msg_control; the CMSG macros walk it
    // within msg_controllen, and the data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                index = u32::try_from(info.ipi_ifindex).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    let sender = (i32::from(from.sin_family) == libc::AF_INET).then(|| {
        SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
            u16::from_be(from.sin_port),
        )
    });
    Ok((buf, sender, index))
}

/// The IPv4 networks of the interfaces that are up and carry multicast,
/// loopback left out.
pub fn interfaces() -> io::Result<Vec<Network>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below.
    if unsafe { libc::getifaddrs(&raw mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut networks = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list getifaddrs made, alive until freed.
        let ifa = unsafe { &*cursor };
        cursor = ifa.ifa_next;
        let flags = ifa.ifa_flags;
        let up = flags & libc::IFF_UP as u32 != 0 && flags & libc::IFF_MULTICAST as u32 != 0;
        if !up || flags & libc::IFF_LOOPBACK as u32 != 0 {
            continue;
        }
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: non-null addresses of the family they name.
        unsafe {
            if i32::from((*ifa.ifa_addr).sa_family) != libc::AF_INET {
                continue;
            }
            let addr = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
            let mask = &*ifa.ifa_netmask.cast::<libc::sockaddr_in>();
            networks.push(Network {
                index: libc::if_nametoindex(ifa.ifa_name),
                addr: Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                prefix: u32::from_be(mask.sin_addr.s_addr).count_ones() as u8,
            });
        }
    }
    // SAFETY: the list getifaddrs made, no longer used.
    unsafe { libc::freeifaddrs(list) };
    Ok(networks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::servers::onvif::{Identity, Onvif};

    fn responder() -> Responder {
        let config = Config::parse("[onvif]\n", "test", None).unwrap();
        let identity = Identity {
            model: "Raspberry Pi 4 Model B Rev 1.5".into(),
            serial: "10000000a1b2c3d4".into(),
            interface: "eth0".into(),
            mac: "dc:a6:32:01:02:03".into(),
            hostname: "cam".into(),
        };
        let camera = Onvif::new(&config, 8554, identity);
        Responder::new(Arc::new(Announcer::new(&camera, 1)), 8080, Instant::now())
    }

    fn probe(id: &str) -> Vec<u8> {
        format!(
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
             xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" \
             xmlns:d=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\"><s:Header>\
             <a:MessageID>{id}</a:MessageID></s:Header><s:Body><d:Probe><d:Scopes>\
             onvif://www.onvif.org/Profile/Streaming</d:Scopes></d:Probe></s:Body></s:Envelope>"
        )
        .into_bytes()
    }

    const LAN: Network = Network {
        index: 2,
        addr: Ipv4Addr::new(192, 168, 1, 20),
        prefix: 24,
    };
    const OTHER: Network = Network {
        index: 3,
        addr: Ipv4Addr::new(10, 0, 0, 5),
        prefix: 8,
    };

    #[test]
    fn a_local_probe_is_answered_once_on_the_address_it_came_in_on() {
        let mut r = responder();
        let now = Instant::now();
        let nets = [LAN, OTHER];
        let from: SocketAddrV4 = "192.168.1.77:50000".parse().unwrap();
        let Verdict::Answer(answer) = r.decide(&probe("urn:uuid:a"), from, 2, &nets, now) else {
            panic!("not answered");
        };
        assert!(
            answer.contains("<d:XAddrs>http://192.168.1.20:8080/onvif/device_service</d:XAddrs>"),
            "{answer}"
        );
        assert!(answer.contains("<a:RelatesTo>urn:uuid:a</a:RelatesTo>"));
        // The same Probe again (clients repeat it): nothing.
        assert_eq!(
            r.decide(&probe("urn:uuid:a"), from, 2, &nets, now),
            Verdict::Nothing
        );
        // On the other interface, its own address.
        let from10: SocketAddrV4 = "10.9.9.9:3702".parse().unwrap();
        let Verdict::Answer(answer) = r.decide(&probe("urn:uuid:b"), from10, 3, &nets, now) else {
            panic!("not answered");
        };
        assert!(answer.contains("http://10.0.0.5:8080/"), "{answer}");
    }

    #[test]
    fn probes_from_elsewhere_and_floods_are_not_answered() {
        let mut r = responder();
        let now = Instant::now();
        let nets = [LAN, OTHER];
        // A sender outside the subnet of the interface the Probe came in
        // on (forged, or routed from afar), or on an interface the camera
        // does not serve.
        for (from, index) in [
            ("203.0.113.9:3702", 2),
            ("10.1.2.3:3702", 2),
            ("192.168.1.77:3702", 9),
        ] {
            assert_eq!(
                r.decide(
                    &probe("urn:uuid:c"),
                    from.parse().unwrap(),
                    index,
                    &nets,
                    now
                ),
                Verdict::NotLocal,
                "{from}"
            );
        }
        // Not a Probe at all.
        let from: SocketAddrV4 = "192.168.1.77:50000".parse().unwrap();
        assert_eq!(r.decide(b"hello", from, 2, &nets, now), Verdict::Nothing);
        // Ten a second are answered, then none until time passes.
        let answered = (0..30)
            .filter(|i| {
                matches!(
                    r.decide(&probe(&format!("urn:uuid:f{i}")), from, 2, &nets, now),
                    Verdict::Answer(_)
                )
            })
            .count();
        assert_eq!(answered, 10);
        let later = now + Duration::from_millis(500);
        let answered = (30..60)
            .filter(|i| {
                matches!(
                    r.decide(&probe(&format!("urn:uuid:f{i}")), from, 2, &nets, later),
                    Verdict::Answer(_)
                )
            })
            .count();
        assert_eq!(answered, 5);
    }

    #[test]
    fn networks_contain_their_own_addresses_only() {
        assert!(LAN.contains(Ipv4Addr::new(192, 168, 1, 255)));
        assert!(!LAN.contains(Ipv4Addr::new(192, 168, 2, 1)));
        let host = Network { prefix: 32, ..LAN };
        assert!(host.contains(LAN.addr) && !host.contains(Ipv4Addr::new(192, 168, 1, 21)));
        let all = Network { prefix: 0, ..LAN };
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
        // This machine's interfaces can be read (loopback is left out).
        assert!(interfaces().unwrap().iter().all(|n| !n.addr.is_loopback()));
    }
}
