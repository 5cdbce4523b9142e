//! WS-Discovery's messages (2005/04, as ONVIF uses it), without I/O: a
//! Probe read (its MessageID, and the types and scopes it looks for), and
//! the camera's own messages written: ProbeMatches to a Probe that wants
//! it, Hello when it starts and Bye when it stops. `servers::discovery`
//! moves them over UDP.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::camera::{DEVICE_PATH, Onvif};
use super::device::{endpoint, scopes};
use super::soap::{ENV, ENV11, TDS, child, esc, is};

/// WS-Addressing, the 2004/08 version WS-Discovery uses.
const WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// WS-Discovery.
const WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
/// ONVIF's network types (`dn:NetworkVideoTransmitter`).
const DN: &str = "http://www.onvif.org/ver10/network/wsdl";
/// Where multicast announcements are addressed.
const TO_DISCOVERY: &str = "urn:schemas-xmlsoap-org:ws:2005:04:discovery";
/// Where a reply to a Probe is addressed.
const TO_ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
/// The default scope matching rule.
const RFC3986: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986";
/// The same rule under its older name, which WS-Discovery 2005/04 uses.
const RFC2396: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc2396";
/// Scopes compared as plain strings.
const STRCMP0: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0";

/// The types the camera is: an ONVIF network video transmitter, and an
/// ONVIF device.
const TYPES: [(&str, &str); 2] = [(DN, "NetworkVideoTransmitter"), (TDS, "Device")];

/// Largest datagram read as a Probe, in bytes (a Probe is under 1 KiB).
pub const MAX_DATAGRAM: usize = 8 * 1024;
/// Most XML nodes a Probe may have.
const MAX_NODES: u32 = 500;
/// Longest MessageID kept, in bytes.
const MAX_MESSAGE_ID: usize = 256;

/// A Probe: who asks, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Its `MessageID`, which the answer relates to.
    pub message_id: String,
    /// The types it looks for, as (namespace, name): none means any.
    pub types: Vec<(String, String)>,
    /// The scopes it looks for: every one must be the camera's.
    pub scopes: Vec<String>,
    /// Its scope matching rule (`MatchBy`), if it names one.
    pub match_by: Option<String>,
}

impl Probe {
    /// Reads a datagram as a Probe (in SOAP 1.2 or 1.1); `None` for
    /// anything else, which is not answered.
    pub fn parse(datagram: &[u8]) -> Option<Self> {
        if datagram.len() > MAX_DATAGRAM {
            return None;
        }
        let text = std::str::from_utf8(datagram).ok()?;
        let options = roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, options).ok()?;
        let root = doc.root_element();
        let env = [ENV, ENV11]
            .into_iter()
            .find(|ns| is(root, ns, "Envelope"))?;
        let header = child(root, env, "Header")?;
        let probe = child(child(root, env, "Body")?, WSD, "Probe")?;
        let message_id = child(header, WSA, "MessageID")?.text()?.trim();
        if message_id.is_empty() || message_id.len() > MAX_MESSAGE_ID {
            return None;
        }
        let words = |name| {
            child(probe, WSD, name)
                .and_then(|n| n.text())
                .map(|t| t.split_ascii_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let types_node = child(probe, WSD, "Types");
        let mut types = Vec::new();
        for qname in words("Types") {
            // A type is a QName: its prefix is declared on the element or
            // an ancestor. An undeclared one can match nothing of ours.
            let (prefix, name) = qname
                .split_once(':')
                .map_or((None, qname), |(p, n)| (Some(p), n));
            let ns = types_node
                .and_then(|n| n.lookup_namespace_uri(prefix))
                .unwrap_or("");
            types.push((ns.to_owned(), name.to_owned()));
        }
        let match_by = child(probe, WSD, "Scopes")
            .and_then(|n| n.attribute("MatchBy"))
            .map(|m| m.trim().to_owned());
        Some(Self {
            message_id: message_id.to_owned(),
            types,
            scopes: words("Scopes").into_iter().map(str::to_owned).collect(),
            match_by,
        })
    }

    /// Whether the camera answers it: it looks for no type or for one the
    /// camera is, and every scope it names matches one of `ours`.
    pub fn wants(&self, ours: &[String]) -> bool {
        let typed = self.types.is_empty()
            || self
                .types
                .iter()
                .any(|(ns, name)| TYPES.iter().any(|(n, m)| ns == n && name == m));
        let rule = self.match_by.as_deref().unwrap_or(RFC3986);
        typed
            && self
                .scopes
                .iter()
                .all(|s| ours.iter().any(|o| scope_matches(rule, s, o)))
    }
}

/// Whether the probe's scope `probe` matches the camera's `ours` under
/// `rule`. RFC 3986 (2396): the scheme and authority compared without
/// case, and the probe's path segments a prefix of ours; strcmp0: equal.
/// A rule the camera does not know matches nothing.
fn scope_matches(rule: &str, probe: &str, ours: &str) -> bool {
    match rule {
        STRCMP0 => probe == ours,
        RFC3986 | RFC2396 => {
            let split = |s: &str| {
                let (scheme, rest) = s.split_once("://")?;
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                Some((
                    scheme.to_ascii_lowercase(),
                    authority.to_ascii_lowercase(),
                    path.to_owned(),
                ))
            };
            let (Some(p), Some(o)) = (split(probe), split(ours)) else {
                return probe == ours;
            };
            let segments = |path: &str| -> Vec<String> {
                path.split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            let (ps, os) = (segments(&p.2), segments(&o.2));
            p.0 == o.0
                && p.1 == o.1
                && ps.len() <= os.len()
                && ps.iter().zip(&os).all(|(a, b)| a == b)
        }
        _ => false,
    }
}

/// The camera as WS-Discovery announces it: its stable endpoint, its
/// scopes, and the numbering of its messages (an instance per start, and
/// a number per message).
#[derive(Debug)]
pub struct Announcer {
    endpoint: String,
    scopes: Vec<String>,
    instance: u32,
    number: AtomicU32,
}

impl Announcer {
    /// The announcer of `camera`, for the daemon started at Unix time
    /// `started` (the instance number WS-Discovery asks to grow with each
    /// start).
    pub fn new(camera: &Onvif, started: u64) -> Self {
        Self {
            endpoint: endpoint(camera),
            scopes: scopes(camera),
            instance: u32::try_from(started).unwrap_or(u32::MAX),
            number: AtomicU32::new(1),
        }
    }

    /// The camera's scopes, which a Probe is matched against.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The answer to the Probe `relates_to`, naming the device service
    /// at `xaddr`.
    pub fn probe_matches(&self, relates_to: &str, xaddr: &str) -> String {
        let body = format!(
            "<d:ProbeMatches><d:ProbeMatch>{}</d:ProbeMatch></d:ProbeMatches>",
            self.description(xaddr)
        );
        self.message("ProbeMatches", TO_ANONYMOUS, Some(relates_to), &body)
    }

    /// The camera's arrival on a network, naming the device service at
    /// `xaddr` there.
    pub fn hello(&self, xaddr: &str) -> String {
        let body = format!("<d:Hello>{}</d:Hello>", self.description(xaddr));
        self.message("Hello", TO_DISCOVERY, None, &body)
    }

    /// The camera's leaving.
    pub fn bye(&self) -> String {
        let body = format!("<d:Bye>{}</d:Bye>", self.reference());
        self.message("Bye", TO_DISCOVERY, None, &body)
    }

    fn reference(&self) -> String {
        format!(
            "<a:EndpointReference><a:Address>{}</a:Address></a:EndpointReference>",
            esc(&self.endpoint)
        )
    }

    /// What a ProbeMatch and a Hello say, in the schema's order.
    fn description(&self, xaddr: &str) -> String {
        format!(
            "{}<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>{}</d:Scopes>\
             <d:XAddrs>{}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>",
            self.reference(),
            esc(&self.scopes.join(" ")),
            esc(xaddr)
        )
    }

    fn message(&self, action: &str, to: &str, relates_to: Option<&str>, body: &str) -> String {
        let relates = relates_to.map_or(String::new(), |r| {
            format!("<a:RelatesTo>{}</a:RelatesTo>", esc(r))
        });
        let number = self.number.fetch_add(1, Ordering::Relaxed);
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope xmlns:env=\"{ENV}\" \
             xmlns:a=\"{WSA}\" xmlns:d=\"{WSD}\" xmlns:dn=\"{DN}\" xmlns:tds=\"{TDS}\"><env:Header>\
             <a:MessageID>{}</a:MessageID>{relates}<a:To>{to}</a:To><a:Action>{WSD}/{action}</a:Action>\
             <d:AppSequence InstanceId=\"{}\" MessageNumber=\"{number}\"/></env:Header>\
             <env:Body>{body}</env:Body></env:Envelope>\n",
            message_id(),
            self.instance
        )
    }
}

/// The device service's address at `ip` on `port`.
pub fn xaddr(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}{DEVICE_PATH}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}{DEVICE_PATH}"),
    }
}

/// A new random `urn:uuid:` (version 4).
fn message_id() -> String {
    let n = rand::random::<u128>() & !(0xf000 << 64) & !(0xc << 60) | (0x4000 << 64) | (0x8 << 60);
    let h = format!("{n:032x}");
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::onvif::tests::camera;

    /// A Probe as python-wsdiscovery (Home Assistant's discovery) sends it.
    fn probe(types: &str, scopes: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope xmlns:s=\"{ENV}\" \
             xmlns:a=\"{WSA}\" xmlns:d=\"{WSD}\" xmlns:dn=\"{DN}\"><s:Header>\
             <a:Action>{WSD}/Probe</a:Action><a:MessageID>urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427</a:MessageID>\
             <a:To>{TO_DISCOVERY}</a:To></s:Header><s:Body><d:Probe>{types}{scopes}</d:Probe></s:Body></s:Envelope>"
        )
    }

    #[test]
    fn a_probe_is_read_with_its_types_resolved_by_namespace() {
        let text = probe(
            "<d:Types xmlns:x=\"http://www.onvif.org/ver10/network/wsdl\">x:NetworkVideoTransmitter</d:Types>",
            "<d:Scopes>onvif://www.onvif.org/Profile/Streaming</d:Scopes>",
        );
        let p = Probe::parse(text.as_bytes()).unwrap();
        assert_eq!(
            p.message_id,
            "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
        );
        assert_eq!(
            p.types,
            vec![(DN.to_owned(), "NetworkVideoTransmitter".to_owned())]
        );
        assert_eq!(p.scopes, vec!["onvif://www.onvif.org/Profile/Streaming"]);
        assert_eq!(p.match_by, None);
        // Not a Probe, not XML, no MessageID, a DTD, too large: nothing.
        let no_id = probe("", "").replace(
            "<a:MessageID>urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427</a:MessageID>",
            "",
        );
        let hello = probe("", "").replace("d:Probe>", "d:Hello>");
        let dtd = probe("", "").replacen("?>", "?><!DOCTYPE x [<!ENTITY a \"b\">]>", 1);
        for bad in [
            no_id,
            hello,
            dtd,
            "garbage".into(),
            format!("{}{}", probe("", ""), " ".repeat(MAX_DATAGRAM)),
        ] {
            assert_eq!(Probe::parse(bad.as_bytes()), None, "{bad:.100}");
        }
    }

    #[test]
    fn the_camera_answers_probes_for_what_it_is() {
        let c = camera(false);
        let a = Announcer::new(&c, 1_796_652_000);
        let wants = |types: &str, scopes: &str| {
            Probe::parse(probe(types, scopes).as_bytes())
                .unwrap()
                .wants(a.scopes())
        };
        // Home Assistant's probe: no type, the Streaming scope.
        assert!(wants(
            "",
            "<d:Scopes>onvif://www.onvif.org/Profile/Streaming</d:Scopes>"
        ));
        assert!(wants("", ""));
        assert!(wants("<d:Types>dn:NetworkVideoTransmitter</d:Types>", ""));
        assert!(wants(
            &format!("<d:Types xmlns:t=\"{TDS}\">t:Device</d:Types>"),
            ""
        ));
        // Scope matching: case-blind scheme and authority, whole segments.
        assert!(wants(
            "",
            "<d:Scopes>ONVIF://WWW.onvif.org/Profile</d:Scopes>"
        ));
        assert!(wants(
            "",
            "<d:Scopes>onvif://www.onvif.org/name/streamcam onvif://www.onvif.org/type</d:Scopes>"
        ));
        assert!(!wants(
            "",
            "<d:Scopes>onvif://www.onvif.org/Prof</d:Scopes>"
        ));
        assert!(!wants(
            "",
            "<d:Scopes>onvif://www.onvif.org/Profile/G</d:Scopes>"
        ));
        assert!(!wants(
            "",
            "<d:Scopes>onvif://www.onvif.org/Profile/Streaming onvif://www.onvif.org/location/mars</d:Scopes>"
        ));
        assert!(wants(
            "",
            &format!(
                "<d:Scopes MatchBy=\"{STRCMP0}\">onvif://www.onvif.org/Profile/Streaming</d:Scopes>"
            )
        ));
        assert!(!wants(
            "",
            &format!("<d:Scopes MatchBy=\"{STRCMP0}\">onvif://www.onvif.org/Profile</d:Scopes>")
        ));
        assert!(!wants(
            "",
            "<d:Scopes MatchBy=\"urn:unknown\">onvif://www.onvif.org/Profile</d:Scopes>"
        ));
        // Other types, or a prefix that names no namespace.
        assert!(!wants("<d:Types>dn:Printer</d:Types>", ""));
        assert!(!wants("<d:Types>zz:NetworkVideoTransmitter</d:Types>", ""));
    }

    #[test]
    fn answers_relate_to_the_probe_and_say_where_the_device_service_is() {
        let c = camera(false);
        let a = Announcer::new(&c, 1_796_652_000);
        let xaddr = xaddr("192.0.2.1".parse().unwrap(), 8080);
        assert_eq!(xaddr, "http://192.0.2.1:8080/onvif/device_service");
        let text = a.probe_matches("urn:uuid:x<y", &xaddr);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let find = |ns: &str, name: &str| {
            doc.descendants()
                .find(|n| is(*n, ns, name))
                .and_then(|n| n.text())
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_owned()
        };
        assert_eq!(find(WSA, "RelatesTo"), "urn:uuid:x<y");
        assert_eq!(find(WSA, "Action"), format!("{WSD}/ProbeMatches"));
        assert_eq!(find(WSA, "To"), TO_ANONYMOUS);
        assert_eq!(find(WSD, "XAddrs"), xaddr);
        assert_eq!(find(WSD, "MetadataVersion"), "1");
        assert_eq!(find(WSA, "Address"), endpoint(&c));
        assert!(find(WSD, "Scopes").contains("onvif://www.onvif.org/Profile/Streaming"));
        let types = doc.descendants().find(|n| is(*n, WSD, "Types")).unwrap();
        assert_eq!(types.lookup_namespace_uri(Some("dn")), Some(DN));
        assert_eq!(types.lookup_namespace_uri(Some("tds")), Some(TDS));
        let sequence = doc
            .descendants()
            .find(|n| is(*n, WSD, "AppSequence"))
            .unwrap();
        assert_eq!(sequence.attribute("InstanceId"), Some("1796652000"));
        // Each message has its own id and the next number.
        let again = a.probe_matches("urn:uuid:z", &xaddr);
        assert_ne!(
            find(WSA, "MessageID"),
            roxmltree::Document::parse(&again)
                .unwrap()
                .descendants()
                .find(|n| is(*n, WSA, "MessageID"))
                .and_then(|n| n.text())
                .unwrap()
        );
        assert!(again.contains("MessageNumber=\"2\""), "{again}");
        // Hello says the same as a match; Bye names the endpoint.
        let hello = a.hello(&xaddr);
        assert!(
            hello.contains(&format!("<a:Action>{WSD}/Hello</a:Action>")) && hello.contains(&xaddr)
        );
        assert!(hello.contains(&format!("<a:To>{TO_DISCOVERY}</a:To>")));
        let bye = a.bye();
        roxmltree::Document::parse(&bye).unwrap();
        assert!(bye.contains(&format!("<a:Address>{}</a:Address>", endpoint(&c))));
        assert!(message_id().starts_with("urn:uuid:") && message_id().len() == 45);
        assert_eq!(&message_id()[23..24], "4");
    }
}
