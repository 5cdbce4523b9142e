//! Multicast on a LAN made of network namespaces (`ci/lan`): the daemon
//! runs in the camera's namespace (`STREAMCAM_RUNNER` = `ip netns exec
//! ...`), listening on `LAN_CAMERA`; these tests and the viewers run in the
//! viewers' one, whose multicast route leads to the camera over a veth
//! pair.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::clients::{self, Mode};
use crate::daemon::{Daemon, Source};
use crate::http::{curl, sample};
use crate::raw::RawClient;

/// The group and port of these tests' `[multicast]`.
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 0, 7);
const PORT: u16 = 5004;

/// The camera's address, from `ci/lan`.
fn camera() -> String {
    std::env::var("LAN_CAMERA").expect(
        "LAN_CAMERA must name the camera's address in another network namespace: run `ci/test lan`",
    )
}

/// A daemon in the camera's namespace with the tests' group.
fn camera_daemon() -> Daemon {
    Daemon::start_with(
        &camera(),
        Source::File,
        &format!("\n[multicast]\ngroup = \"{GROUP}\"\nport = {PORT}\n"),
    )
}

/// Listens on the group, as the network carries it, until `until`: how
/// many times each RTP sequence number arrived.
fn listen_to_group(until: Instant) -> HashMap<u16, usize> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    // The viewers bind the same port.
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&SocketAddr::from((GROUP, PORT)).into())
        .unwrap();
    let socket: UdpSocket = socket.into();
    socket
        .join_multicast_v4(&GROUP, &Ipv4Addr::UNSPECIFIED)
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut seen = HashMap::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        if let Ok(n) = socket.recv(&mut buf) {
            if n >= 12 && buf[0] >> 6 == 2 {
                *seen
                    .entry(u16::from_be_bytes([buf[2], buf[3]]))
                    .or_insert(0) += 1;
            }
        }
    }
    seen
}

#[test]
fn multicast_viewers_share_one_copy_of_each_packet_and_one_leaving_ends_nothing() {
    let d = camera_daemon();
    let url = d.url();
    let listener = std::thread::spawn(|| listen_to_group(Instant::now() + Duration::from_secs(9)));
    std::thread::sleep(Duration::from_millis(300));
    // ffmpeg leaves (TEARDOWN) after 2 s; GStreamer watches on for 6 s.
    let short = {
        let url = url.clone();
        std::thread::spawn(move || clients::ffmpeg(&url, "udp_multicast", 60, Mode::Decode))
    };
    let long = clients::gstreamer(&url, "udp-mcast", 180, Mode::Decode);
    let short = short.join().unwrap();
    short.assert_clean("ffmpeg/multicast", 60);
    long.assert_clean("gstreamer/multicast, outliving the other", 180);
    let seen = listener.join().unwrap();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} of {} packets heard more than once, e.g. {:?}",
        twice.len(),
        seen.len(),
        &twice[..twice.len().min(5)]
    );
    // The daemon's count of what it sent to the group is what the group
    // carried (the listener heard all of it), not one copy per viewer.
    let (_, _, metrics) = curl(&d.http_url("/metrics"), &[]);
    let to_group = sample(&metrics, "streamcam_multicast_sent_packets_total");
    let to_sessions = sample(&metrics, "streamcam_sent_packets_total");
    let heard = seen.len() as f64;
    assert!(
        heard > 300.0 && (heard * 0.98..=heard).contains(&to_group) && to_group < to_sessions,
        "{to_group} packets sent to the group, {heard} heard there, {to_sessions} counted for the two sessions"
    );
    let log = d.log();
    let ended = log
        .lines()
        .filter(|l| l.contains("session ended") && l.contains("transport=multicast"))
        .count();
    assert_eq!(ended, 2, "{log}");
}

#[test]
fn setup_gets_the_servers_group_and_another_group_is_refused() {
    let d = camera_daemon();
    let mut c = RawClient::connect(&d);
    let r = c.setup("RTP/AVP;multicast;destination=239.9.9.9;port=6000-6001");
    assert_eq!(r.status, 403, "{r:?}");
    for offer in [
        "RTP/AVP;multicast",
        &format!("RTP/AVP;multicast;destination={GROUP};port=7000-7001"),
    ] {
        let r = c.setup(offer);
        assert_eq!(r.status, 200, "{offer}: {r:?}");
        let transport = r.header("transport").unwrap_or_default();
        assert!(
            transport.starts_with(&format!(
                "RTP/AVP;multicast;destination={GROUP};port={PORT}-{};ttl=1;",
                PORT + 1
            )),
            "{offer}: {transport}"
        );
    }
    // Unicast clients of the same daemon are served as ever.
    let (probe, errors) = clients::ffprobe(&d.url(), "udp");
    assert!(
        probe.contains("h264|") && probe.contains("width=1280"),
        "{probe} {errors}"
    );
}

/// The outsider's address, from `ci/lan`: on the viewers' side of the
/// link, but not on the camera's network.
fn outsider() -> String {
    std::env::var("LAN_OUTSIDER")
        .expect("LAN_OUTSIDER must name an address off the camera's network: run `ci/test lan`")
}

/// A WS-Discovery Probe for ONVIF cameras, with `id` as its MessageID.
fn probe(id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope \
         xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
         xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" \
         xmlns:d=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\"><s:Header>\
         <a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>\
         <a:MessageID>{id}</a:MessageID><a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>\
         </s:Header><s:Body><d:Probe/></s:Body></s:Envelope>"
    )
}

/// What comes back to a Probe sent unicast from `from` to the camera's
/// WS-Discovery port, within `wait`.
fn unicast_probe(from: &str, id: &str, wait: Duration) -> Option<String> {
    let socket = UdpSocket::bind((from, 0)).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket
        .send_to(probe(id).as_bytes(), (camera().as_str(), 3702))
        .unwrap();
    let mut buf = [0u8; 8192];
    socket
        .recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ws_discovery_finds_the_camera_as_home_assistant_does_and_hears_hello_and_bye() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let python = std::env::var("ONVIF_PYTHON")
        .expect("ONVIF_PYTHON must name the Python with wsdiscovery: run `ci/test lan`");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onvif/discover.py");
    let mut client = Command::new("timeout")
        .args(["60", &python, script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running python-wsdiscovery");
    let (tx, lines) = mpsc::channel();
    let stdout = client.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> String {
        loop {
            match lines.recv_timeout(Duration::from_secs(15)) {
                Ok(l) if l.starts_with(what) => return l,
                Ok(_) => {}
                Err(e) => panic!("no {what:?} from python-wsdiscovery: {e}"),
            }
        }
    };
    next("listening");
    let mut d = Daemon::start_with(
        &camera(),
        Source::File,
        "\n[onvif]\nname = \"Porch\"\nlocation = \"front door\"\n",
    );
    let xaddr = format!("http://{}:{}/onvif/device_service", camera(), d.http_port);
    // Hello, as it starts, naming where its device service is.
    let hello = next("hello ");
    assert!(hello.ends_with(&xaddr), "{hello}");
    let endpoint = hello.split(' ').nth(1).unwrap().to_owned();
    assert!(endpoint.starts_with("urn:uuid:"), "{hello}");
    // Found by Home Assistant's probe: its Streaming scope, the name and
    // location as scopes, the device service on the camera's address.
    let mut input = client.stdin.take().unwrap();
    writeln!(input, "probe").unwrap();
    let found = next("found ");
    next("probed");
    let words: Vec<&str> = found.split(' ').collect();
    assert_eq!(words[1], endpoint, "{found}");
    assert_eq!(words[2], xaddr, "{found}");
    for scope in [
        "onvif://www.onvif.org/Profile/Streaming",
        "onvif://www.onvif.org/name/Porch",
        "onvif://www.onvif.org/location/front%20door",
    ] {
        assert!(words[3..].contains(&scope), "{scope} in {found}");
    }
    // The device service is there, at that address.
    let (status, _, answer) = curl(
        &xaddr,
        &[
            "-H",
            "Content-Type: application/soap+xml",
            "--data",
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>\
             <GetDiscoveryMode xmlns=\"http://www.onvif.org/ver10/device/wsdl\"/></s:Body></s:Envelope>",
        ],
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(">Discoverable<"), "{answer}");
    // A unicast Probe from this network is answered; the same from an
    // address off the camera's network (which it could reach) is not.
    let reply = unicast_probe(
        "10.204.0.2",
        "urn:uuid:0a0a0a0a-0000-4000-8000-000000000001",
        Duration::from_secs(3),
    );
    assert!(reply.as_deref().unwrap_or("").contains(&xaddr), "{reply:?}");
    let reply = unicast_probe(
        &outsider(),
        "urn:uuid:0a0a0a0a-0000-4000-8000-000000000002",
        Duration::from_secs(2),
    );
    assert_eq!(reply, None);
    assert!(
        d.wait_for_log(
            "is not answered: it is not from a network this camera is on",
            Duration::from_secs(2)
        )
        .is_some(),
        "{}",
        d.log()
    );
    // Bye, as it stops.
    let (status, _) = d
        .terminate(Duration::from_secs(5))
        .expect("the daemon stops");
    assert!(status.success());
    let bye = next("bye ");
    assert_eq!(bye, format!("bye {endpoint}"));
    drop(input);
    let _ = client.wait();
}

/// The viewers' end of the LAN's link.
const VIEWERS_LINK: &str = "lan1";

/// A socket on WS-Discovery's port in the group ff02::c on the viewers'
/// link, hearing Hello and Bye (and the answers to its own Probes).
fn ipv6_discovery_listener() -> (UdpSocket, u32) {
    use socket2::{Domain, Protocol, Socket, Type};
    let name = std::ffi::CString::new(VIEWERS_LINK).unwrap();
    // SAFETY: a C string naming an interface.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no {VIEWERS_LINK} here: run `ci/test lan`");
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_only_v6(true).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 3702)).into())
        .unwrap();
    let group: std::net::Ipv6Addr = "ff02::c".parse().unwrap();
    socket.join_multicast_v6(&group, index).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    (socket.into(), index)
}

/// The next datagram on `socket` that contains `what`, within `wait`.
fn hear(socket: &UdpSocket, what: &str, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains(what) {
                return Some(text);
            }
        }
    }
    None
}

#[test]
fn ws_discovery_over_ipv6_answers_with_both_addresses_of_the_link() {
    let (listener, index) = ipv6_discovery_listener();
    let camera6 = std::env::var("LAN_CAMERA6")
        .expect("LAN_CAMERA6 must name the camera's IPv6 address: run `ci/test lan`");
    // HTTP on every address, so the device service is on both.
    let mut d = Daemon::start_with("::", Source::File, "\n[onvif]\nname = \"Porch\"\n");
    let v4 = format!("http://{}:{}/onvif/device_service", camera(), d.http_port);
    let v6 = format!("http://[{camera6}]:{}/onvif/device_service", d.http_port);
    let both = format!("<d:XAddrs>{v4} {v6}</d:XAddrs>");
    // Hello on the link, with both.
    let hello = hear(&listener, "/Hello</", Duration::from_secs(10));
    assert!(
        hello.as_deref().is_some_and(|h| h.contains(&both)),
        "{hello:?}\n{}",
        d.log()
    );
    // A Probe to ff02::c from the link-local address (what most clients
    // send from) is answered, to it, with both.
    let prober = UdpSocket::bind("[::]:0").unwrap();
    prober
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let group = std::net::SocketAddrV6::new("ff02::c".parse().unwrap(), 3702, 0, index);
    prober
        .send_to(
            probe("urn:uuid:0a0a0a0a-0000-4000-8000-000000000006").as_bytes(),
            group,
        )
        .unwrap();
    let mut buf = [0u8; 8192];
    let (n, from) = prober.recv_from(&mut buf).expect("an answer to the Probe");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        answer.contains("ProbeMatches") && answer.contains(&both),
        "{answer}"
    );
    assert!(from.is_ipv6(), "{from}");
    // The device service answers at the IPv6 address.
    let (status, _, body) = curl(
        &v6,
        &[
            "-H",
            "Content-Type: application/soap+xml",
            "--data",
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>\
             <GetDiscoveryMode xmlns=\"http://www.onvif.org/ver10/device/wsdl\"/></s:Body></s:Envelope>",
        ],
    );
    assert_eq!(status, 200, "{body}");
    // Bye on the link, as it stops.
    let (status, _) = d
        .terminate(Duration::from_secs(5))
        .expect("the daemon stops");
    assert!(status.success());
    assert!(
        hear(&listener, "/Bye</", Duration::from_secs(5)).is_some(),
        "no Bye over IPv6"
    );
}
