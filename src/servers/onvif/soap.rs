//! SOAP as ONVIF speaks it, without I/O: a request read into a
//! namespace-aware tree (roxmltree: no DTDs, so no entities to expand, and
//! a cap on its nodes), its operation and its WS-Security token; answers
//! and faults written as small escaped templates, in the request's SOAP
//! version (1.2, which ONVIF specifies, or 1.1, which some recorders send).

pub use crate::format::markup::escape as esc;
use crate::servers::auth::wsse::UsernameToken;

/// SOAP 1.2's envelope.
pub const ENV: &str = "http://www.w3.org/2003/05/soap-envelope";
/// SOAP 1.1's envelope.
pub const ENV11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// ONVIF's device service.
pub const TDS: &str = "http://www.onvif.org/ver10/device/wsdl";
/// ONVIF's media service (ver10).
pub const TRT: &str = "http://www.onvif.org/ver10/media/wsdl";
/// ONVIF's event service.
pub const TEV: &str = "http://www.onvif.org/ver10/events/wsdl";
/// WS-BaseNotification (subscriptions' Renew and Unsubscribe, messages).
pub const WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
/// WS-Addressing (a subscription's address).
const WSA: &str = "http://www.w3.org/2005/08/addressing";
/// WS-Topics (the event service's topic set).
const WSTOP: &str = "http://docs.oasis-open.org/wsn/t-1";
/// ONVIF's topics (`tns1:VideoSource/SignalLoss`).
const TNS1: &str = "http://www.onvif.org/ver10/topics";
/// XML Schema's types (`xs:boolean` in message descriptions).
const XS: &str = "http://www.w3.org/2001/XMLSchema";
/// ONVIF's schema types.
pub const TT: &str = "http://www.onvif.org/ver10/schema";
/// ONVIF's fault subcodes.
pub const TER: &str = "http://www.onvif.org/ver10/error";
/// WS-Security's header.
const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// WS-Security's utility elements (`Created`).
const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";

/// Largest request body taken, in bytes (ONVIF's requests are a few
/// kilobytes).
pub const MAX_BODY: usize = 64 * 1024;
/// Most XML nodes a request may have.
const MAX_NODES: u32 = 4000;

/// The SOAP version of a request, which its answer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SOAP 1.2 (`application/soap+xml`), what ONVIF specifies.
    Soap12,
    /// SOAP 1.1 (`text/xml`).
    Soap11,
}

impl Version {
    /// The envelope's namespace.
    pub fn namespace(self) -> &'static str {
        match self {
            Self::Soap12 => ENV,
            Self::Soap11 => ENV11,
        }
    }

    /// The HTTP content type of a message in this version.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Soap12 => "application/soap+xml; charset=utf-8",
            Self::Soap11 => "text/xml; charset=utf-8",
        }
    }
}

/// A SOAP request, parsed.
pub struct Request<'a> {
    doc: roxmltree::Document<'a>,
    version: Version,
}

/// What is wrong with a request, or why it is refused: answered as a SOAP
/// fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Not XML, not a SOAP envelope, or no operation in its body.
    Malformed(String),
    /// Wrong or missing credentials (`ter:NotAuthorized`).
    NotAuthorized,
    /// Neither a UsernameToken nor HTTP credentials, or wrong HTTP ones:
    /// `ter:NotAuthorized` with HTTP 401 and these `WWW-Authenticate`
    /// challenges (HTTP Digest, which ONVIF allows instead of the token).
    HttpLogin(Vec<String>),
    /// Too many failed logins from this address.
    Throttled,
    /// An operation this camera does not offer (`ter:ActionNotSupported`).
    ActionNotSupported(String),
    /// An argument this camera has nothing for: the `ter:` subcode under
    /// `ter:InvalidArgVal` (e.g. "NoProfile") and the reason.
    InvalidArgVal(&'static str, String),
    /// A profile to create: the camera's profiles are fixed
    /// (`ter:MaxNVTProfiles`).
    MaxProfiles,
    /// A subscription to create: the camera has all it can hold
    /// (`ter:MaxPullPoints`).
    MaxPullPoints,
}

impl Fault {
    /// The HTTP status and the SOAP envelope of the fault, in `version`.
    /// SOAP 1.1 has no subcodes: its `faultcode` is the most specific one,
    /// and every 1.1 fault is a 500.
    pub fn render(&self, version: Version) -> (u16, String) {
        // (sender's fault, subcode chain, reason)
        let (sender, subcodes, reason): (bool, Vec<&str>, String) = match self {
            Self::Malformed(why) => (true, vec!["ter:InvalidArgs"], why.clone()),
            Self::NotAuthorized => (
                true,
                vec!["ter:NotAuthorized"],
                "Sender not authorized: a user name and password are needed (WS-Security \
                 UsernameToken)"
                    .into(),
            ),
            Self::HttpLogin(_) => (
                true,
                vec!["ter:NotAuthorized"],
                "Sender not authorized: a user name and password are needed (WS-Security \
                 UsernameToken, or HTTP Digest)"
                    .into(),
            ),
            Self::Throttled => (
                false,
                vec!["ter:Action", "ter:TooManyFailedLogins"],
                "too many failed logins from this address: wait".into(),
            ),
            Self::ActionNotSupported(op) => (
                false,
                vec!["ter:ActionNotSupported"],
                format!("Optional action not implemented: {op}"),
            ),
            Self::InvalidArgVal(sub, why) => (true, vec!["ter:InvalidArgVal", sub], why.clone()),
            Self::MaxProfiles => (
                false,
                vec!["ter:Action", "ter:MaxNVTProfiles"],
                "the camera's profiles are fixed: its stream and its substream".into(),
            ),
            Self::MaxPullPoints => (
                false,
                vec!["ter:Action", "ter:MaxPullPoints"],
                "the camera has as many event subscriptions as it keeps: end one, or wait for \
                 one to expire"
                    .into(),
            ),
        };
        let qualified = |sub: &str| {
            if sub.contains(':') {
                sub.to_owned()
            } else {
                format!("ter:{sub}")
            }
        };
        if version == Version::Soap11 {
            let code = subcodes
                .last()
                .map_or("env:Server".into(), |s| qualified(s));
            let body = format!(
                "<env:Fault><faultcode>{code}</faultcode><faultstring>{}</faultstring></env:Fault>",
                esc(&reason)
            );
            return (500, envelope(version, &body));
        }
        let mut code = String::new();
        for sub in subcodes.iter().rev() {
            let sub = qualified(sub);
            code = format!("<env:Subcode><env:Value>{sub}</env:Value>{code}</env:Subcode>");
        }
        let value = if sender { "env:Sender" } else { "env:Receiver" };
        let body = format!(
            "<env:Fault><env:Code><env:Value>{value}</env:Value>{code}</env:Code>\
             <env:Reason><env:Text xml:lang=\"en\">{}</env:Text></env:Reason></env:Fault>",
            esc(&reason)
        );
        (if sender { 400 } else { 500 }, envelope(version, &body))
    }
}

impl<'a> Request<'a> {
    /// Reads a SOAP 1.2 or 1.1 envelope. What cannot be read is refused
    /// with the fault to answer and the version to answer it in (1.2 when
    /// the request named neither).
    pub fn parse(text: &'a str) -> Result<Self, (Version, Fault)> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| {
            let fault = Fault::Malformed(format!("not a SOAP request: {e}"));
            (Version::Soap12, fault)
        })?;
        let root = doc.root_element();
        let Some(version) = [Version::Soap12, Version::Soap11]
            .into_iter()
            .find(|v| is(root, v.namespace(), "Envelope"))
        else {
            let fault = Fault::Malformed(format!(
                "not a SOAP envelope (SOAP 1.2: {ENV}; SOAP 1.1: {ENV11})"
            ));
            return Err((Version::Soap12, fault));
        };
        let request = Self { doc, version };
        if request.operation_node().is_none() {
            let fault = Fault::Malformed("no operation in the SOAP body".into());
            return Err((version, fault));
        }
        Ok(request)
    }

    /// The request's SOAP version.
    pub fn version(&self) -> Version {
        self.version
    }

    fn body(&self) -> Option<roxmltree::Node<'_, 'a>> {
        child(self.doc.root_element(), self.version.namespace(), "Body")
    }

    fn operation_node(&self) -> Option<roxmltree::Node<'_, 'a>> {
        self.body()?.children().find(roxmltree::Node::is_element)
    }

    /// The operation: its namespace and name, e.g. (`TDS`, "GetProfiles").
    pub fn operation(&self) -> (&str, &str) {
        let op = self.operation_node().expect("checked by parse");
        (
            op.tag_name().namespace().unwrap_or(""),
            op.tag_name().name(),
        )
    }

    /// The text of the operation's first descendant named `name` (in any
    /// namespace: requests put arguments in the service's or `tt:`).
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.operation_node()?
            .descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(str::trim)
    }

    /// The header's WS-Security UsernameToken, if it has one.
    pub fn token(&self) -> Option<UsernameToken<'_>> {
        let header = child(self.doc.root_element(), self.version.namespace(), "Header")?;
        let security = child(header, WSSE, "Security")?;
        let token = child(security, WSSE, "UsernameToken")?;
        let text = |ns, name| child(token, ns, name).map(|n| n.text().unwrap_or("").trim());
        let password = child(token, WSSE, "Password")?;
        let digest = password
            .attribute("Type")
            .is_some_and(|t| t.ends_with("#PasswordDigest"));
        Some(UsernameToken {
            username: text(WSSE, "Username")?,
            password: password.text().unwrap_or("").trim(),
            digest,
            nonce: text(WSSE, "Nonce"),
            created: text(WSU, "Created").or_else(|| text(WSSE, "Created")),
        })
    }
}

/// True if `node` is the element `ns`:`name`.
pub(super) fn is(node: roxmltree::Node, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

/// The first child element `ns`:`name` of `node`.
pub(super) fn child<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| is(*n, ns, name))
}

/// `body` in a SOAP envelope of `version` that declares every prefix
/// answers use (`tt`, `tds`, `trt`, `ter`; `tev`, `wsnt`, `wsa`, `wstop`,
/// `tns1` and `xs` for events).
pub fn envelope(version: Version, body: &str) -> String {
    let env = version.namespace();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope xmlns:env=\"{env}\" \
         xmlns:tt=\"{TT}\" xmlns:tds=\"{TDS}\" xmlns:trt=\"{TRT}\" xmlns:ter=\"{TER}\" \
         xmlns:tev=\"{TEV}\" xmlns:wsnt=\"{WSNT}\" xmlns:wsa=\"{WSA}\" xmlns:wstop=\"{WSTOP}\" \
         xmlns:tns1=\"{TNS1}\" xmlns:xs=\"{XS}\"><env:Body>{body}</env:Body></env:Envelope>\n"
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A request as onvif-zeep (Home Assistant's client) sends it: its own
    /// prefixes, WS-Addressing headers and a digest token.
    pub(in crate::servers::onvif) fn zeep_request(
        body: &str,
        token: Option<(&str, &str, &str, &str)>,
    ) -> String {
        let security = token.map_or(String::new(), |(user, digest, nonce, created)| {
            format!(
                "<wsse:Security xmlns:wsse=\"{WSSE}\"><wsse:UsernameToken>\
                 <wsse:Username>{user}</wsse:Username>\
                 <wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest\">{digest}</wsse:Password>\
                 <wsse:Nonce EncodingType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary\">{nonce}</wsse:Nonce>\
                 <wsu:Created xmlns:wsu=\"{WSU}\">{created}</wsu:Created>\
                 </wsse:UsernameToken></wsse:Security>"
            )
        });
        format!(
            "<?xml version='1.0' encoding='utf-8'?>\n<soap-env:Envelope xmlns:soap-env=\"{ENV}\">\
             <soap-env:Header>{security}\
             <wsa:Action xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">x</wsa:Action>\
             </soap-env:Header><soap-env:Body>{body}</soap-env:Body></soap-env:Envelope>"
        )
    }

    #[test]
    fn the_operation_arguments_and_token_are_read_by_namespace() {
        let text = zeep_request(
            &format!(
                "<ns0:GetStreamUri xmlns:ns0=\"{TRT}\" xmlns:ns1=\"{TT}\"><ns0:StreamSetup>\
                 <ns1:Stream>RTP-Unicast</ns1:Stream><ns1:Transport><ns1:Protocol>RTSP</ns1:Protocol>\
                 </ns1:Transport></ns0:StreamSetup><ns0:ProfileToken> main </ns0:ProfileToken>\
                 </ns0:GetStreamUri>"
            ),
            Some(("admin", "ZGln", "bm9uY2U=", "2026-12-07T13:25:09+00:00")),
        );
        let r = Request::parse(&text).unwrap();
        assert_eq!(r.operation(), (TRT, "GetStreamUri"));
        assert_eq!(r.arg("ProfileToken"), Some("main"));
        assert_eq!(r.arg("Protocol"), Some("RTSP"));
        assert_eq!(r.arg("Missing"), None);
        let t = r.token().unwrap();
        assert_eq!(
            (t.username, t.password, t.digest, t.nonce, t.created),
            (
                "admin",
                "ZGln",
                true,
                Some("bm9uY2U="),
                Some("2026-12-07T13:25:09+00:00")
            )
        );
        let text = zeep_request(&format!("<GetProfiles xmlns=\"{TRT}\"/>"), None);
        let plain = Request::parse(&text).unwrap();
        assert_eq!(plain.operation(), (TRT, "GetProfiles"));
        assert!(plain.token().is_none());
    }

    #[test]
    fn what_is_not_a_soap_request_is_refused_without_expanding_anything() {
        let laughs = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
             <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>\
             <env:Envelope xmlns:env=\"{ENV}\"><env:Body><x>&lol2;</x></env:Body></env:Envelope>"
        );
        let many = format!(
            "<env:Envelope xmlns:env=\"{ENV}\"><env:Body><x>{}</x></env:Body></env:Envelope>",
            "<a/>".repeat(5000)
        );
        for bad in [
            String::new(),
            "hello".into(),
            "<Envelope><Body><GetProfiles/></Body></Envelope>".into(),
            format!("<env:Envelope xmlns:env=\"{ENV}\"><env:Body/></env:Envelope>"),
            format!("<env:Envelope xmlns:env=\"{ENV}\"><env:Body><x></env:Body></env:Envelope>"),
            laughs,
            many,
        ] {
            assert!(
                matches!(
                    Request::parse(&bad),
                    Err((Version::Soap12, Fault::Malformed(_)))
                ),
                "{bad:.80}"
            );
        }
    }

    #[test]
    fn faults_carry_onvif_subcodes() {
        let (status, xml) = Fault::NotAuthorized.render(Version::Soap12);
        assert_eq!(status, 400);
        assert!(xml.contains(
            "<env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode>"
        ), "{xml}");
        let (status, xml) =
            Fault::InvalidArgVal("NoProfile", "no profile \"x<\"".into()).render(Version::Soap12);
        assert_eq!(status, 400);
        assert!(xml.contains("<env:Value>ter:InvalidArgVal</env:Value><env:Subcode><env:Value>ter:NoProfile</env:Value></env:Subcode></env:Subcode>"), "{xml}");
        assert!(xml.contains("no profile &quot;x&lt;&quot;"), "{xml}");
        let (status, xml) = Fault::ActionNotSupported("SetHostname".into()).render(Version::Soap12);
        assert_eq!(status, 500);
        assert!(xml.contains("ter:ActionNotSupported") && xml.contains("SetHostname"));
        // Every fault is itself a well-formed envelope, whatever a
        // client's input brought into its reason.
        for f in [
            Fault::Throttled,
            Fault::MaxProfiles,
            Fault::Malformed("<&>".into()),
            Fault::Malformed("not '\u{1}' or '\u{0}' or '\u{ffff}'".into()),
        ] {
            for version in [Version::Soap12, Version::Soap11] {
                roxmltree::Document::parse(&f.render(version).1).unwrap();
            }
        }
    }

    #[test]
    fn soap_1_1_is_read_and_answered_in_its_own_envelope() {
        let text = format!(
            "<s:Envelope xmlns:s=\"{ENV11}\"><s:Header><wsse:Security xmlns:wsse=\"{WSSE}\">\
             <wsse:UsernameToken><wsse:Username>admin</wsse:Username>\
             <wsse:Password>pw</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header>\
             <s:Body><GetProfiles xmlns=\"{TRT}\"/></s:Body></s:Envelope>"
        );
        let r = Request::parse(&text).unwrap();
        assert_eq!(r.version(), Version::Soap11);
        assert_eq!(r.operation(), (TRT, "GetProfiles"));
        assert_eq!(r.token().unwrap().username, "admin");
        // A 1.1 envelope with no operation is refused in 1.1.
        let empty = format!("<s:Envelope xmlns:s=\"{ENV11}\"><s:Body/></s:Envelope>");
        assert!(matches!(
            Request::parse(&empty),
            Err((Version::Soap11, Fault::Malformed(_)))
        ));
        // 1.1 has no subcodes: the most specific is the faultcode, and
        // every fault is a 500.
        let (status, xml) = Fault::NotAuthorized.render(Version::Soap11);
        assert_eq!(status, 500);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert!(is(doc.root_element(), ENV11, "Envelope"), "{xml}");
        let code = doc.descendants().find(|n| n.has_tag_name("faultcode"));
        assert_eq!(code.and_then(|n| n.text()), Some("ter:NotAuthorized"));
        assert!(xml.contains("<faultstring>Sender not authorized"), "{xml}");
        let (_, xml) = Fault::MaxProfiles.render(Version::Soap11);
        assert!(
            xml.contains("<faultcode>ter:MaxNVTProfiles</faultcode>"),
            "{xml}"
        );
    }
}
