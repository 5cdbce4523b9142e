//! WS-Discovery on the local networks (`[onvif]`, `onvif.discovery`): NVRs
//! and Home Assistant multicast a Probe to 239.255.255.250:3702 (and to
//! [ff02::c]:3702 over IPv6), and the camera answers it, unicast, with
//! where its device service is, on the address of the interface the Probe
//! came in on (read with `IP_PKTINFO` / `IPV6_PKTINFO`; over IPv6, that
//! interface's IPv4 and routable IPv6 addresses: a link-local one is no
//! use in a URL). It says Hello on each network it finds (looked for again
//! every 30 s) and Bye when it stops. The messages are
//! `servers::onvif::discovery`'s; this is the UDP side.
//!
//! Only a Probe from a local network is answered: its sender must be in
//! the subnet of an address of the interface it came in on, so the camera
//! cannot be made to send anything elsewhere. Answers wait a random delay
//! of up to 500 ms (WS-Discovery's, so that cameras do not all answer at
//! once), each MessageID is answered once (clients send each Probe several
//! times, and over both IP versions), and at most 10 answers leave a
//! second.
//!
//! The port is shared (`SO_REUSEADDR`, `SO_REUSEPORT`) with what else
//! listens on it, such as Samba's wsdd.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::servers::onvif::discovery::{Announcer, MAX_DATAGRAM, Probe, xaddr};

/// WS-Discovery's IPv4 group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// WS-Discovery's IPv6 group (link-local scope).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xc);
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

/// A network the camera is on: an interface's address and prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The interface's index.
    pub index: u32,
    /// The interface's address on it.
    pub addr: IpAddr,
    /// The length of its prefix.
    pub prefix: u8,
}

impl Network {
    /// Whether `ip` is on this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix.min(32)))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix.min(128)))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        }
    }

    /// Whether a client can reach the device service at this address: not
    /// an IPv6 link-local one (a URL cannot carry its interface), and one
    /// the HTTP side listens on (`http_ip`; `::` takes IPv4 too).
    fn reachable(&self, http_ip: IpAddr) -> bool {
        let link_local = matches!(self.addr, IpAddr::V6(v6) if v6.is_unicast_link_local());
        let listening = http_ip == self.addr
            || http_ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            || (http_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) && self.addr.is_ipv4());
        listening && !link_local
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
    http_ip: IpAddr,
    http_port: u16,
    seen: VecDeque<String>,
    tokens: f64,
    refilled: Instant,
}

impl Responder {
    /// A responder naming the device service on the HTTP side's
    /// `http_ip` (unspecified: every address) and `http_port`.
    pub fn new(announcer: Arc<Announcer>, http_ip: IpAddr, http_port: u16, now: Instant) -> Self {
        Self {
            announcer,
            http_ip,
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
        from: SocketAddr,
        index: u32,
        networks: &[Network],
        now: Instant,
    ) -> Verdict {
        let Some(probe) = Probe::parse(datagram) else {
            return Verdict::Nothing;
        };
        let from_ip = from.ip().to_canonical();
        let Some(network) = networks
            .iter()
            .find(|n| n.index == index && n.contains(from_ip))
        else {
            return Verdict::NotLocal;
        };
        let xaddrs = match network.addr {
            IpAddr::V4(_) if network.reachable(self.http_ip) => xaddr(network.addr, self.http_port),
            IpAddr::V4(_) => String::new(),
            IpAddr::V6(_) => self.xaddrs(networks, index),
        };
        if xaddrs.is_empty()
            || self.seen.contains(&probe.message_id)
            || !probe.wants(self.announcer.scopes())
        {
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
        Verdict::Answer(self.announcer.probe_matches(&probe.message_id, &xaddrs))
    }

    /// The device service on every address of interface `index` a client
    /// can reach, IPv4 first, space-separated (WS-Discovery's XAddrs).
    fn xaddrs(&self, networks: &[Network], index: u32) -> String {
        let mut reachable: Vec<IpAddr> = networks
            .iter()
            .filter(|n| n.index == index && n.reachable(self.http_ip))
            .map(|n| n.addr)
            .collect();
        reachable.sort_by_key(IpAddr::is_ipv6);
        reachable.dedup();
        reachable
            .into_iter()
            .map(|ip| xaddr(ip, self.http_port))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The two sockets: IPv4's, and IPv6's where the machine has IPv6.
struct Sockets {
    v4: UdpSocket,
    v6: Option<UdpSocket>,
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
    let v4 = match open_v4().and_then(UdpSocket::from_std) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "ONVIF discovery: cannot listen on UDP port {PORT}: {e}; NVRs will not find \
                 the camera by themselves (add it by its address)"
            );
            return;
        }
    };
    let v6 = match open_v6().and_then(UdpSocket::from_std) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::info!("ONVIF discovery: IPv4 only (no IPv6 socket on port {PORT}: {e})");
            None
        }
    };
    let sockets = Arc::new(Sockets { v4, v6 });
    let mut responder = Responder::new(Arc::clone(&announcer), http_ip, http_port, Instant::now());
    let mut networks: Vec<Network> = Vec::new();
    let mut rescan = tokio::time::interval(RESCAN);
    let mut last_log: HashMap<&'static str, Instant> = HashMap::new();
    loop {
        let received = tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
            _ = rescan.tick() => {
                let found = match interfaces() {
                    Ok(all) => all,
                    Err(e) => {
                        tracing::warn!("ONVIF discovery: cannot read the interfaces: {e}");
                        continue;
                    }
                };
                join_and_greet(&sockets, &announcer, &responder, &networks, &found);
                networks = found;
                continue;
            }
            r = sockets.v4.async_io(Interest::READABLE, || receive(sockets.v4.as_raw_fd())) => r,
            r = receive_v6(sockets.v6.as_ref()) => r,
        };
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
                let sockets = Arc::clone(&sockets);
                let delay = MAX_DELAY.mul_f64(rand::random::<f64>());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let socket = match from {
                        SocketAddr::V4(_) => Some(&sockets.v4),
                        SocketAddr::V6(_) => sockets.v6.as_ref(),
                    };
                    if let Some(socket) = socket
                        && let Err(e) = socket.send_to(answer.as_bytes(), from).await
                    {
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
                if last_log
                    .get(key)
                    .is_none_or(|t| now.duration_since(*t) >= LOG_EVERY)
                {
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
    let bye = announcer.bye();
    for net in networks.iter().filter(|n| n.addr.is_ipv4()) {
        if net.reachable(http_ip) {
            send_v4(&sockets.v4, net, &bye);
        }
    }
    for index in v6_interfaces(&networks) {
        if !responder.xaddrs(&networks, index).is_empty() {
            send_v6(sockets.v6.as_ref(), index, &bye);
        }
    }
}

/// The next datagram on the IPv6 socket; never, without one.
async fn receive_v6(socket: Option<&UdpSocket>) -> io::Result<(Vec<u8>, Option<SocketAddr>, u32)> {
    match socket {
        Some(s) => {
            s.async_io(Interest::READABLE, || receive(s.as_raw_fd()))
                .await
        }
        None => std::future::pending().await,
    }
}

/// The interfaces with IPv6 among `networks`, each once.
fn v6_interfaces(networks: &[Network]) -> Vec<u32> {
    let mut indexes: Vec<u32> = networks
        .iter()
        .filter(|n| n.addr.is_ipv6())
        .map(|n| n.index)
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    indexes
}

/// Joins the groups on the networks of `found` that `known` did not have,
/// and says Hello there: on each new IPv4 network, and on each interface
/// with IPv6 that is new.
fn join_and_greet(
    sockets: &Sockets,
    announcer: &Announcer,
    responder: &Responder,
    known: &[Network],
    found: &[Network],
) {
    for net in found
        .iter()
        .filter(|n| n.addr.is_ipv4() && !known.contains(n))
    {
        let IpAddr::V4(addr) = net.addr else { continue };
        if !net.reachable(responder.http_ip) {
            continue;
        }
        match sockets.v4.join_multicast_v4(GROUP, addr) {
            // Joined already (another address of the same interface).
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {}
            Err(e) => {
                tracing::warn!("ONVIF discovery: cannot join {GROUP} on {addr}: {e}");
                continue;
            }
        }
        let at = xaddr(net.addr, responder.http_port);
        tracing::info!(
            "ONVIF discovery: answering Probes on {addr}/{}, the device service at {at}",
            net.prefix
        );
        send_v4(&sockets.v4, net, &announcer.hello(&at));
    }
    let Some(v6) = &sockets.v6 else { return };
    let before = v6_interfaces(known);
    for index in v6_interfaces(found) {
        let at = responder.xaddrs(found, index);
        if before.contains(&index) || at.is_empty() {
            continue;
        }
        match v6.join_multicast_v6(&GROUP_V6, index) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {}
            Err(e) => {
                tracing::warn!("ONVIF discovery: cannot join {GROUP_V6} on interface {index}: {e}");
                continue;
            }
        }
        tracing::info!(
            "ONVIF discovery: answering IPv6 Probes on interface {index}, the device service at {at}"
        );
        send_v6(Some(v6), index, &announcer.hello(&at));
    }
}

/// Multicasts `message` on `net`'s interface (IPv4).
fn send_v4(socket: &UdpSocket, net: &Network, message: &str) {
    let IpAddr::V4(addr) = net.addr else { return };
    let sock = socket2::SockRef::from(socket);
    let sent = sock
        .set_multicast_if_v4(&addr)
        .and_then(|()| sock.send_to(message.as_bytes(), &SocketAddr::from((GROUP, PORT)).into()));
    if let Err(e) = sent {
        tracing::debug!("ONVIF discovery: cannot multicast on {addr}: {e}");
    }
}

/// Multicasts `message` on interface `index` (IPv6).
fn send_v6(socket: Option<&UdpSocket>, index: u32, message: &str) {
    let Some(socket) = socket else { return };
    let to = SocketAddr::V6(SocketAddrV6::new(GROUP_V6, PORT, 0, index));
    if let Err(e) = socket2::SockRef::from(socket).send_to(message.as_bytes(), &to.into()) {
        tracing::debug!("ONVIF discovery: cannot multicast on interface {index}: {e}");
    }
}

/// The shared, non-blocking IPv4 socket on WS-Discovery's port, telling
/// on which interface each datagram came in.
fn open_v4() -> io::Result<std::net::UdpSocket> {
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

/// The same for IPv6 (IPv6 only: IPv4 has its own).
fn open_v6() -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    set_option(&socket, libc::SOL_SOCKET, libc::SO_REUSEPORT)?;
    set_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
    socket.set_multicast_hops_v6(1)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT)).into())?;
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
/// reaches), its sender, and the index of the interface it came in on
/// (`IP_PKTINFO` or `IPV6_PKTINFO`). By hand: std and tokio give no
/// ancillary data.
fn receive(fd: RawFd) -> io::Result<(Vec<u8>, Option<SocketAddr>, u32)> {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    // SAFETY: plain C structures, all zero is their empty value.
    let mut from: libc::sockaddr_storage = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one in_pktinfo or in6_pktinfo message, aligned as cmsghdr
    // needs.
    let mut control = [0u64; 8];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
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
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                index = u32::try_from(info.ipi_ifindex).unwrap_or(0);
            } else if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                index = info.ipi6_ifindex;
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    // SAFETY: the kernel wrote a sockaddr of the family it names.
    let sender = unsafe { socket_addr(&from) };
    Ok((buf, sender, index))
}

/// The address in `storage`, if it is IPv4 or IPv6.
///
/// # Safety
/// `storage` holds a sockaddr of the family it names.
unsafe fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the caller's promise.
            let a = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the caller's promise.
            let a = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The networks (IPv4 and IPv6) of the interfaces that are up and carry
/// multicast, loopback left out.
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
        let (addr, prefix) = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let addr = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    let mask = &*ifa.ifa_netmask.cast::<libc::sockaddr_in>();
                    (
                        IpAddr::V4(Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr))),
                        u32::from_be(mask.sin_addr.s_addr).count_ones(),
                    )
                }
                libc::AF_INET6 => {
                    let addr = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                    let mask = &*ifa.ifa_netmask.cast::<libc::sockaddr_in6>();
                    (
                        IpAddr::V6(Ipv6Addr::from(addr.sin6_addr.s6_addr)),
                        u128::from_be_bytes(mask.sin6_addr.s6_addr).count_ones(),
                    )
                }
                _ => continue,
            }
        };
        networks.push(Network {
            // SAFETY: the interface's name, a C string of the list.
            index: unsafe { libc::if_nametoindex(ifa.ifa_name) },
            addr,
            prefix: prefix as u8,
        });
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
        let everywhere = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        Responder::new(
            Arc::new(Announcer::new(&camera, 1)),
            everywhere,
            8080,
            Instant::now(),
        )
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
        addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)),
        prefix: 24,
    };
    const OTHER: Network = Network {
        index: 3,
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
        prefix: 8,
    };
    /// LAN's interface's IPv6: link-local, and a routable (ULA) prefix.
    const LAN_LINK: Network = Network {
        index: 2,
        addr: IpAddr::V6(Ipv6Addr::new(
            0xfe80, 0, 0, 0, 0xdea6, 0x32ff, 0xfe01, 0x203,
        )),
        prefix: 64,
    };
    const LAN_ULA: Network = Network {
        index: 2,
        addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x204, 0, 0, 0, 0, 0, 1)),
        prefix: 64,
    };

    #[test]
    fn a_local_probe_is_answered_once_on_the_address_it_came_in_on() {
        let mut r = responder();
        let now = Instant::now();
        let nets = [LAN, OTHER];
        let from: SocketAddr = "192.168.1.77:50000".parse().unwrap();
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
        let from10: SocketAddr = "10.9.9.9:3702".parse().unwrap();
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
        let from: SocketAddr = "192.168.1.77:50000".parse().unwrap();
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
    fn an_ipv6_probe_gets_every_address_of_its_interface_a_client_can_use() {
        let mut r = responder();
        let now = Instant::now();
        let nets = [LAN, LAN_LINK, LAN_ULA, OTHER];
        // From a link-local sender (what most clients send from).
        let from: SocketAddr = "[fe80::1234]:3702".parse().unwrap();
        let Verdict::Answer(answer) = r.decide(&probe("urn:uuid:6a"), from, 2, &nets, now) else {
            panic!("not answered");
        };
        assert!(
            answer.contains(
                "<d:XAddrs>http://192.168.1.20:8080/onvif/device_service \
                 http://[fd00:204::1]:8080/onvif/device_service</d:XAddrs>"
            ),
            "{answer}"
        );
        // Off the interface's prefixes, or on another interface: not local.
        for (from, index) in [("[2001:db8::9]:3702", 2), ("[fe80::1234]:3702", 3)] {
            assert_eq!(
                r.decide(
                    &probe("urn:uuid:6b"),
                    from.parse().unwrap(),
                    index,
                    &nets,
                    now
                ),
                Verdict::NotLocal,
                "{from}"
            );
        }
        // The HTTP side on IPv4 only: IPv4's address alone; on one IPv6
        // address: that one alone.
        for (http, expected) in [
            (
                "0.0.0.0",
                "<d:XAddrs>http://192.168.1.20:8080/onvif/device_service</d:XAddrs>",
            ),
            (
                "fd00:204::1",
                "<d:XAddrs>http://[fd00:204::1]:8080/onvif/device_service</d:XAddrs>",
            ),
        ] {
            let mut r = Responder {
                http_ip: http.parse().unwrap(),
                ..responder()
            };
            let Verdict::Answer(answer) = r.decide(&probe("urn:uuid:6c"), from, 2, &nets, now)
            else {
                panic!("not answered");
            };
            assert!(answer.contains(expected), "{http}: {answer}");
        }
        // Only a link-local address and the HTTP side on IPv6 alone:
        // nothing a client could use, so no answer.
        let mut r = Responder {
            http_ip: "fd00:204::1".parse().unwrap(),
            ..responder()
        };
        assert_eq!(
            r.decide(&probe("urn:uuid:6d"), from, 2, &[LAN_LINK], now),
            Verdict::Nothing
        );
    }

    #[test]
    fn networks_contain_their_own_addresses_only() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        assert!(LAN.contains(v4(192, 168, 1, 255)));
        assert!(!LAN.contains(v4(192, 168, 2, 1)));
        let host = Network { prefix: 32, ..LAN };
        assert!(host.contains(LAN.addr) && !host.contains(v4(192, 168, 1, 21)));
        let all = Network { prefix: 0, ..LAN };
        assert!(all.contains(v4(8, 8, 8, 8)));
        assert!(!all.contains(LAN_ULA.addr));
        assert!(LAN_ULA.contains("fd00:204::ffff".parse().unwrap()));
        assert!(!LAN_ULA.contains("fd00:205::1".parse().unwrap()));
        assert!(!LAN_ULA.contains(LAN.addr));
        // This machine's interfaces can be read (loopback is left out).
        assert!(interfaces().unwrap().iter().all(|n| !n.addr.is_loopback()));
    }
}
