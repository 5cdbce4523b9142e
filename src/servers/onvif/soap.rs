//! SOAP 1.2 as ONVIF speaks it, without I/O: a request read into a
//! namespace-aware tree (roxmltree: no DTDs, so no entities to expand, and
//! a cap on its nodes), its operation and its WS-Security token; answers
//! and faults written as small escaped templates.

pub use crate::format::markup::escape as esc;
use crate::servers::auth::wsse::UsernameToken;

/// SOAP 1.2's envelope.
pub const ENV: &str = "http://www.w3.org/2003/05/soap-envelope";
/// ONVIF's device service.
pub const TDS: &str = "http://www.onvif.org/ver10/device/wsdl";
/// ONVIF's media service (ver10).
pub const TRT: &str = "http://www.onvif.org/ver10/media/wsdl";
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

/// A SOAP request, parsed.
pub struct Request<'a> {
    doc: roxmltree::Document<'a>,
}

/// What is wrong with a request, or why it is refused: answered as a SOAP
/// fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Not XML, not a SOAP 1.2 envelope, or no operation in its body.
    Malformed(String),
    /// Wrong or missing credentials (`ter:NotAuthorized`).
    NotAuthorized,
    /// Too many failed logins from this address.
    Throttled,
    /// An operation this camera does not offer (`ter:ActionNotSupported`).
    ActionNotSupported(String),
    /// An argument this camera has nothing for: the `ter:` subcode under
    /// `ter:InvalidArgVal` (e.g. "NoProfile") and the reason.
    InvalidArgVal(&'static str, String),
}

impl Fault {
    /// The HTTP status and the SOAP envelope of the fault.
    pub fn render(&self) -> (u16, String) {
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
        };
        let mut code = String::new();
        for sub in subcodes.iter().rev() {
            let sub = if sub.contains(':') {
                (*sub).to_owned()
            } else {
                format!("ter:{sub}")
            };
            code = format!("<env:Subcode><env:Value>{sub}</env:Value>{code}</env:Subcode>");
        }
        let value = if sender { "env:Sender" } else { "env:Receiver" };
        let body = format!(
            "<env:Fault><env:Code><env:Value>{value}</env:Value>{code}</env:Code>\
             <env:Reason><env:Text xml:lang=\"en\">{}</env:Text></env:Reason></env:Fault>",
            esc(&reason)
        );
        (if sender { 400 } else { 500 }, envelope(&body))
    }
}

impl<'a> Request<'a> {
    /// Reads a SOAP 1.2 envelope.
    pub fn parse(text: &'a str) -> Result<Self, Fault> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, options)
            .map_err(|e| Fault::Malformed(format!("not a SOAP request: {e}")))?;
        let root = doc.root_element();
        if !is(root, ENV, "Envelope") {
            return Err(Fault::Malformed(
                "not a SOAP 1.2 envelope (http://www.w3.org/2003/05/soap-envelope)".into(),
            ));
        }
        let request = Self { doc };
        if request.operation_node().is_none() {
            return Err(Fault::Malformed("no operation in the SOAP body".into()));
        }
        Ok(request)
    }

    fn body(&self) -> Option<roxmltree::Node<'_, 'a>> {
        child(self.doc.root_element(), ENV, "Body")
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
        let header = child(self.doc.root_element(), ENV, "Header")?;
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
fn is(node: roxmltree::Node, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

/// The first child element `ns`:`name` of `node`.
fn child<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| is(*n, ns, name))
}

/// `body` in a SOAP 1.2 envelope that declares the prefixes answers use
/// (`tt`, `tds`, `trt`, `ter`).
pub fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope xmlns:env=\"{ENV}\" \
         xmlns:tt=\"{TT}\" xmlns:tds=\"{TDS}\" xmlns:trt=\"{TRT}\" xmlns:ter=\"{TER}\">\
         <env:Body>{body}</env:Body></env:Envelope>\n"
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
                matches!(Request::parse(&bad), Err(Fault::Malformed(_))),
                "{bad:.80}"
            );
        }
    }

    #[test]
    fn faults_carry_onvif_subcodes() {
        let (status, xml) = Fault::NotAuthorized.render();
        assert_eq!(status, 400);
        assert!(xml.contains(
            "<env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode>"
        ), "{xml}");
        let (status, xml) = Fault::InvalidArgVal("NoProfile", "no profile \"x<\"".into()).render();
        assert_eq!(status, 400);
        assert!(xml.contains("<env:Value>ter:InvalidArgVal</env:Value><env:Subcode><env:Value>ter:NoProfile</env:Value></env:Subcode></env:Subcode>"), "{xml}");
        assert!(xml.contains("no profile &quot;x&lt;&quot;"), "{xml}");
        let (status, xml) = Fault::ActionNotSupported("SetHostname".into()).render();
        assert_eq!(status, 500);
        assert!(xml.contains("ter:ActionNotSupported") && xml.contains("SetHostname"));
        // Every fault is itself a well-formed envelope, whatever a
        // client's input brought into its reason.
        for f in [
            Fault::Throttled,
            Fault::Malformed("<&>".into()),
            Fault::Malformed("not '\u{1}' or '\u{0}' or '\u{ffff}'".into()),
        ] {
            roxmltree::Document::parse(&f.render().1).unwrap();
        }
    }
}
