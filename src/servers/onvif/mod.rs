//! ONVIF Profile S on the HTTP port, without I/O: the device service
//! (`/onvif/device_service`, [`device`]), the media service
//! (`/onvif/media_service`, [`media`]) that NVRs and Home Assistant use to
//! add the camera and find its streams, and the event service
//! (`/onvif/events_service` and its subscriptions, [`events`]) that tells
//! them when the camera's picture is lost. A request's SOAP body and the
//! time come in, the answer goes out ([`Onvif::respond`]); the HTTP side
//! does the I/O, and the waiting of a PullMessages.
//!
//! Logins are WS-Security UsernameTokens checked against `[auth]`'s users
//! (with the same throttling as RTSP and HTTP), or, in a request without
//! one, HTTP Digest as the other pages take it; the operations ONVIF lets
//! anyone call before logging in (the time, the services and
//! capabilities, the host name) need none.

pub mod camera;
mod device;
pub mod discovery;
pub mod events;
pub mod identity;
mod media;
pub mod soap;
pub mod subscriptions;

use crate::servers::auth::{Attempt, Auth, Verdict};
pub use camera::{Caller, DEVICE_PATH, MEDIA_PATH, Moment, Onvif};
pub use events::EVENTS_PATH;
pub use identity::Identity;
use soap::{Fault, Request, Version};
pub use subscriptions::Wait;

/// Operations anyone may call before logging in (ONVIF Core, "access
/// classes": PRE_AUTH).
const PRE_AUTH: [&str; 7] = [
    "GetSystemDateAndTime",
    "GetCapabilities",
    "GetServices",
    "GetServiceCapabilities",
    "GetHostname",
    "GetWsdlUrl",
    "GetEndpointReference",
];

/// Which service a request was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Device,
    Media,
    Events,
    /// An event subscription, by its id.
    Subscription(u64),
}

impl Service {
    /// The service at `path`, if it is one.
    pub fn at(path: &str) -> Option<Self> {
        match path {
            DEVICE_PATH => Some(Self::Device),
            MEDIA_PATH => Some(Self::Media),
            EVENTS_PATH => Some(Self::Events),
            _ => events::pullpoint_at(path).map(Self::Subscription),
        }
    }

    /// The namespaces of its operations, and its name for faults.
    fn namespaces(self) -> (&'static [&'static str], &'static str) {
        match self {
            Self::Device => (&[soap::TDS], "device"),
            Self::Media => (&[soap::TRT], "media"),
            Self::Events => (&[soap::TEV, soap::WSNT], "event"),
            Self::Subscription(_) => (&[soap::TEV, soap::WSNT], "subscription"),
        }
    }
}

/// An answer: the HTTP status, the content type of the request's SOAP
/// version, and the SOAP envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub xml: String,
    /// `WWW-Authenticate` challenges, with a 401.
    pub challenges: Vec<String>,
}

/// What a request gets: an answer now, or (a PullMessages with nothing
/// to pull yet) a wait, after which [`Onvif::pulled`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Now(Answer),
    Wait(Wait),
}

/// The body of an answer, or a PullMessages' wait.
enum Body {
    Xml(String),
    Wait(Wait),
}

impl From<String> for Body {
    fn from(xml: String) -> Self {
        Self::Xml(xml)
    }
}

impl Onvif {
    /// The reply to a SOAP request `body` sent to `service`.
    pub fn respond(
        &self,
        service: Service,
        body: &str,
        caller: Caller,
        auth: Option<&Auth>,
        moment: &Moment,
    ) -> Reply {
        let (version, result) = match Request::parse(body) {
            Ok(request) => (
                request.version(),
                self.dispatch(service, &request, caller, auth, moment),
            ),
            // An empty body is how HTTP Digest clients (curl, for one)
            // ask for the challenge before sending the request.
            Err((version, _)) if body.trim().is_empty() && auth.is_some() => {
                let fault = match http_login(caller, auth, moment) {
                    Ok(()) => Fault::Malformed("an empty request".into()),
                    Err(fault) => fault,
                };
                (version, Err(fault))
            }
            Err((version, fault)) => (version, Err(fault)),
        };
        match result {
            Ok(Body::Wait(wait)) => Reply::Wait(wait),
            Ok(Body::Xml(xml)) => Reply::Now(answer(version, Ok(xml))),
            Err(fault) => Reply::Now(answer(version, Err(fault))),
        }
    }

    /// The answer to a SOAP request `body` sent to `service`, without
    /// waiting: a PullMessages with nothing to pull is answered at once.
    pub fn answer(
        &self,
        service: Service,
        body: &str,
        caller: Caller,
        auth: Option<&Auth>,
        moment: &Moment,
    ) -> Answer {
        match self.respond(service, body, caller, auth, moment) {
            Reply::Now(answer) => answer,
            Reply::Wait(wait) => self.pulled(&wait, moment),
        }
    }

    /// The answer to a PullMessages once its wait is over: what came, or
    /// nothing.
    pub fn pulled(&self, wait: &Wait, moment: &Moment) -> Answer {
        answer(wait.version, events::after_wait(self, wait, moment))
    }

    /// The body of the answer to `request`, once its service and login
    /// are checked.
    fn dispatch(
        &self,
        service: Service,
        request: &Request,
        caller: Caller,
        auth: Option<&Auth>,
        moment: &Moment,
    ) -> Result<Body, Fault> {
        let (ns, operation) = request.operation();
        let (wanted, name) = service.namespaces();
        if !wanted.contains(&ns) {
            return Err(Fault::ActionNotSupported(format!(
                "{operation} ({ns}) at the {name} service"
            )));
        }
        // Synology's recorders try to create a profile of their own
        // without logging in, and take a refusal for a login as wrong
        // credentials: this one is refused for what it is, to anyone.
        if (ns, operation) == (soap::TRT, "CreateProfile") {
            return Err(Fault::MaxProfiles);
        }
        if !PRE_AUTH.contains(&operation) {
            self.check_login(request, caller, auth, moment)?;
        }
        Ok(match service {
            Service::Device => device::answer(self, request, caller, moment)?.into(),
            Service::Media => media::answer(self, request, caller, moment)?.into(),
            Service::Events => events::answer(self, request, caller, moment)?.into(),
            Service::Subscription(id) => {
                match events::answer_subscription(self, id, request, moment)? {
                    Ok(xml) => Body::Xml(xml),
                    Err(wait) => Body::Wait(wait),
                }
            }
        })
    }

    /// A login by the request's UsernameToken, or else by HTTP Digest.
    fn check_login(
        &self,
        request: &Request,
        caller: Caller,
        auth: Option<&Auth>,
        moment: &Moment,
    ) -> Result<(), Fault> {
        let Some(auth) = auth else {
            return Ok(());
        };
        let Some(token) = request.token() else {
            return http_login(caller, Some(auth), moment);
        };
        match auth.check_token(
            Some(&token),
            caller.client,
            caller.secure,
            moment.now,
            moment.unix,
        ) {
            Verdict::Allowed { .. } => Ok(()),
            Verdict::Challenge { .. } => Err(Fault::NotAuthorized),
            Verdict::Throttled { .. } => Err(Fault::Throttled),
        }
    }
}

/// A login by HTTP Digest (the request's `Authorization` header), as the
/// other pages take it; without one, or with a wrong one, a 401 with a
/// challenge.
fn http_login(caller: Caller, auth: Option<&Auth>, moment: &Moment) -> Result<(), Fault> {
    let Some(auth) = auth else {
        return Ok(());
    };
    // The Digest `uri` names the path; the scheme and host are not signed.
    let url = url::Url::parse("http://streamcam")
        .and_then(|base| base.join(caller.path))
        .map_err(|_| Fault::NotAuthorized)?;
    let attempt = Attempt {
        method: "POST",
        url: &url,
        authorization: caller.authorization,
        client: caller.client,
        secure: caller.secure,
        now: moment.now,
    };
    match auth.check(&attempt) {
        Verdict::Allowed { .. } => Ok(()),
        Verdict::Challenge { stale } => Err(Fault::HttpLogin(auth.challenges(
            stale,
            caller.secure,
            moment.now,
        ))),
        Verdict::Throttled { .. } => Err(Fault::Throttled),
    }
}

/// The HTTP status, content type and envelope of a body or a fault.
fn answer(version: Version, result: Result<String, Fault>) -> Answer {
    let (status, xml, challenges) = match result {
        Ok(body) => (200, soap::envelope(version, &body), Vec::new()),
        Err(Fault::HttpLogin(challenges)) => {
            let (_, xml) = Fault::HttpLogin(Vec::new()).render(version);
            (401, xml, challenges)
        }
        Err(fault) => {
            let (status, xml) = fault.render(version);
            (status, xml, Vec::new())
        }
    };
    Answer {
        status,
        content_type: version.content_type(),
        xml,
        challenges,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::camera::{host_name, host_port, http_url};
    use super::*;
    use crate::config::auth::UserConfig;
    use crate::config::{AuthConfig, Config};
    use crate::servers::auth::wsse::password_digest;
    use base64::Engine;
    use soap::tests::zeep_request;
    use soap::{TDS, TRT};

    pub(super) fn camera(substream: bool) -> Onvif {
        camera_of(if substream {
            "[onvif]\nname = \"Front & back\"\n[substream]\n"
        } else {
            "[onvif]\n"
        })
    }

    /// The ONVIF side of configuration `text`, on a Pi.
    pub(super) fn camera_of(text: &str) -> Onvif {
        let config = Config::parse(text, "test", None).unwrap();
        let identity = Identity {
            model: "Raspberry Pi 3 Model B Plus Rev 1.3".into(),
            serial: "00000000a1b2c3d4".into(),
            interface: "eth0".into(),
            mac: "b8:27:eb:12:34:56".into(),
            hostname: "garden".into(),
        };
        Onvif::new(&config, 8554, identity)
    }

    pub(super) fn caller() -> Caller<'static> {
        Caller {
            client: "192.0.2.7".parse().unwrap(),
            secure: false,
            host: "192.0.2.1:8080",
            path: DEVICE_PATH,
            authorization: None,
        }
    }

    pub(super) fn moment() -> Moment {
        Moment {
            now: Instant::now(),
            unix: 1_796_649_909,
            profile_idc: vec![Some(100), None],
        }
    }

    /// The answer to `op` (with its namespace `ns` and inner XML `args`),
    /// without credentials and without users.
    pub(super) fn ask(camera: &Onvif, service: Service, ns: &str, op: &str, args: &str) -> Answer {
        let body = zeep_request(&format!("<o:{op} xmlns:o=\"{ns}\">{args}</o:{op}>"), None);
        camera.answer(service, &body, caller(), None, &moment())
    }

    fn users() -> Auth {
        Auth::new(&AuthConfig {
            users: vec![
                UserConfig {
                    name: "admin".into(),
                    password: Some("secret".into()),
                    ha1: None,
                },
                UserConfig {
                    name: "hashed".into(),
                    password: None,
                    ha1: Some("939e7578ed9e3c518a452acee763bce9".into()),
                },
            ],
            ..AuthConfig::default()
        })
        .unwrap()
    }

    /// A token as onvif-zeep makes it: 16 random bytes of nonce, Created
    /// to the second with "+00:00".
    fn token(
        user: &str,
        password: &str,
        nonce: &[u8],
        created: &str,
    ) -> (String, String, String, String) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64.encode(nonce);
        let digest = b64.encode(password_digest(&nonce, created, password).unwrap());
        (user.into(), digest, nonce, created.into())
    }

    #[test]
    fn operations_past_login_need_a_fresh_token_of_a_user() {
        let camera = camera(false);
        let auth = users();
        let op = format!("<tds:GetDeviceInformation xmlns:tds=\"{TDS}\"/>");
        let send = |t: Option<&(String, String, String, String)>, client: &str| {
            let t = t.map(|t| (t.0.as_str(), t.1.as_str(), t.2.as_str(), t.3.as_str()));
            let caller = Caller {
                client: client.parse().unwrap(),
                ..caller()
            };
            camera.answer(
                Service::Device,
                &zeep_request(&op, t),
                caller,
                Some(&auth),
                &moment(),
            )
        };
        let now = "2026-12-07T13:25:09+00:00";
        let good = token("admin", "secret", b"0123456789abcdef", now);
        let answer = send(Some(&good), "192.0.2.7");
        assert_eq!(answer.status, 200, "{}", answer.xml);
        assert!(
            answer
                .xml
                .contains("<tds:Model>Raspberry Pi 3 Model B Plus Rev 1.3</tds:Model>")
        );
        // The same token again: a replay.
        let replay = send(Some(&good), "192.0.2.7");
        assert!(replay.xml.contains("ter:NotAuthorized"), "{}", replay.xml);
        for bad in [
            token("admin", "wrong", b"1123456789abcdef", now),
            token("nobody", "secret", b"2123456789abcdef", now),
            // Ten minutes old.
            token(
                "admin",
                "secret",
                b"3123456789abcdef",
                "2026-12-07T13:15:09Z",
            ),
            // Only an ha1 is known: a digest cannot be checked.
            token("hashed", "secret", b"4123456789abcdef", now),
        ] {
            let answer = send(Some(&bad), "192.0.2.8");
            assert_eq!(answer.status, 400, "{bad:?}");
            assert!(
                answer.xml.contains("ter:NotAuthorized"),
                "{bad:?}: {}",
                answer.xml
            );
        }
        let none = send(None, "192.0.2.9");
        assert!(none.xml.contains("ter:NotAuthorized"));
        // The time and the capabilities are open to all.
        let open = format!("<tds:GetSystemDateAndTime xmlns:tds=\"{TDS}\"/>");
        let answer = camera.answer(
            Service::Device,
            &zeep_request(&open, None),
            caller(),
            Some(&auth),
            &moment(),
        );
        assert_eq!(answer.status, 200);
        // Failing on: that address is made to wait.
        for n in 0..6 {
            send(Some(&token("admin", "wrong", &[n; 16], now)), "192.0.2.10");
        }
        let answer = send(
            Some(&token("admin", "secret", &[99; 16], now)),
            "192.0.2.10",
        );
        assert_eq!(answer.status, 500);
        assert!(
            answer.xml.contains("too many failed logins"),
            "{}",
            answer.xml
        );
    }

    #[test]
    fn without_a_token_http_digest_logs_in() {
        use md5::{Digest as _, Md5};
        let camera = camera(false);
        let auth = users();
        let op = zeep_request(
            &format!("<tds:GetDeviceInformation xmlns:tds=\"{TDS}\"/>"),
            None,
        );
        let send = |authorization: Option<&str>| {
            let caller = Caller {
                authorization,
                client: "192.0.2.20".parse().unwrap(),
                ..caller()
            };
            camera.answer(Service::Device, &op, caller, Some(&auth), &moment())
        };
        // Nothing: a 401 with a Digest challenge, and the fault Home
        // Assistant reads.
        let refused = send(None);
        assert_eq!(refused.status, 401);
        assert!(refused.xml.contains("ter:NotAuthorized"), "{}", refused.xml);
        let challenge = refused
            .challenges
            .iter()
            .find(|c| c.starts_with("Digest "))
            .unwrap_or_else(|| panic!("{:?}", refused.challenges));
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let hex = |parts: &[&str]| {
            let mut md5 = Md5::new();
            for p in parts {
                md5.update(p.as_bytes());
            }
            crate::servers::auth::to_hex(&md5.finalize())
        };
        let header = |password: &str| {
            let ha1 = hex(&["admin:streamcam:", password]);
            let ha2 = hex(&["POST:", DEVICE_PATH]);
            let response = hex(&[&ha1, ":", nonce, ":", &ha2]);
            format!(
                "Digest username=\"admin\", realm=\"streamcam\", nonce=\"{nonce}\", \
                 uri=\"{DEVICE_PATH}\", response=\"{response}\""
            )
        };
        let wrong = send(Some(&header("wrong")));
        assert_eq!(wrong.status, 401, "{}", wrong.xml);
        let answer = send(Some(&header("secret")));
        assert_eq!(answer.status, 200, "{}", answer.xml);
        assert!(
            answer
                .xml
                .contains("<tds:Manufacturer>streamcam</tds:Manufacturer>")
        );
    }

    #[test]
    fn home_assistants_recorded_requests_are_answered() {
        // Home Assistant's client (onvif-zeep-async 4.3.0) logging in as
        // admin/secret, its requests as sent (tests/data/onvif/).
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/onvif");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 6);
        let camera = camera(true);
        let auth = Auth::new(&AuthConfig {
            users: vec![UserConfig {
                name: "admin".into(),
                password: Some("secret".into()),
                ha1: None,
            }],
            ..AuthConfig::default()
        })
        .unwrap();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let request = Request::parse(&text).unwrap();
            let created = request.token().and_then(|t| t.created).unwrap();
            let at = crate::format::civil::Civil::parse_xml(created).unwrap();
            let service = if request.operation().0 == soap::TRT {
                Service::Media
            } else {
                Service::Device
            };
            let moment = Moment {
                unix: at + 1,
                ..moment()
            };
            let answer = camera.answer(service, &text, caller(), Some(&auth), &moment);
            let op = request.operation().1;
            assert_eq!(answer.status, 200, "{}: {}", file.display(), answer.xml);
            assert!(answer.xml.contains(&format!("{op}Response>")), "{op}");
            // Sent again: refused, as a replay.
            if !PRE_AUTH.contains(&op) {
                let again = camera.answer(service, &text, caller(), Some(&auth), &moment);
                assert!(
                    again.xml.contains("ter:NotAuthorized"),
                    "{op}: {}",
                    again.xml
                );
            }
        }
    }

    #[test]
    fn recorders_requests_are_answered_as_they_need() {
        // Requests in the forms recorders send them (tests/data/onvif-nvr/,
        // written after captures their users published): each logs in as
        // admin/secret at 2026-12-07T13:25:09Z, where it logs in at all.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/onvif-nvr");
        let camera = camera(true);
        let auth = users();
        let moment = Moment {
            unix: 1_796_649_910,
            ..moment()
        };
        for (file, service, status, wanted) in [
            // Synology: no login, a profile of its own; refused as the
            // camera's profiles are fixed, not as a wrong login.
            (
                "synology-create-profile.xml",
                Service::Media,
                500,
                "<env:Value>ter:MaxNVTProfiles</env:Value>",
            ),
            // Hikvision: OSD is not offered, said once logged in.
            (
                "hikvision-get-osd-options.xml",
                Service::Media,
                500,
                "<env:Value>ter:ActionNotSupported</env:Value>",
            ),
            // UniFi Protect: the token in WS-Security's default namespace,
            // its time with milliseconds.
            (
                "unifi-get-profiles.xml",
                Service::Media,
                200,
                "<trt:Profiles token=\"sub\"",
            ),
            // SOAP 1.1, answered in 1.1.
            (
                "soap11-get-device-information.xml",
                Service::Device,
                200,
                "<tds:Manufacturer>streamcam</tds:Manufacturer>",
            ),
        ] {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            let answer = camera.answer(service, &text, caller(), Some(&auth), &moment);
            assert_eq!(answer.status, status, "{file}: {}", answer.xml);
            assert!(answer.xml.contains(wanted), "{file}: {}", answer.xml);
            assert!(roxmltree::Document::parse(&answer.xml).is_ok(), "{file}");
        }
    }

    #[test]
    fn every_answer_is_one_well_formed_envelope() {
        let camera = camera(true);
        for (service, ns, ops) in [
            (Service::Device, TDS, device::OPERATIONS.as_slice()),
            (Service::Media, TRT, media::OPERATIONS.as_slice()),
            (Service::Events, soap::TEV, events::OPERATIONS.as_slice()),
        ] {
            for op in ops {
                let config = if op.contains("VideoSourceConfiguration") {
                    media::SOURCE_CONFIG
                } else {
                    "main"
                };
                let args = format!(
                    "<o:ProfileToken>main</o:ProfileToken><o:ConfigurationToken>{config}</o:ConfigurationToken>"
                );
                let args = args.as_str();
                let answer = ask(&camera, service, ns, op, args);
                assert_eq!(answer.status, 200, "{op}: {}", answer.xml);
                let doc =
                    roxmltree::Document::parse(&answer.xml).unwrap_or_else(|e| panic!("{op}: {e}"));
                let body = doc.root_element().first_element_child().unwrap();
                let response = body.first_element_child().unwrap();
                assert_eq!(response.tag_name().name(), format!("{op}Response"));
                assert_eq!(response.tag_name().namespace(), Some(ns));
            }
        }
    }

    #[test]
    fn what_is_not_offered_is_said_so() {
        let camera = camera(false);
        let answer = ask(&camera, Service::Device, TDS, "SystemReboot", "");
        assert_eq!(answer.status, 500);
        assert!(
            answer.xml.contains("ter:ActionNotSupported") && answer.xml.contains("SystemReboot")
        );
        // A media operation sent to the device service.
        let answer = ask(&camera, Service::Device, TRT, "GetProfiles", "");
        assert!(
            answer.xml.contains("ter:ActionNotSupported"),
            "{}",
            answer.xml
        );
        let answer = camera.answer(Service::Media, "<nonsense/>", caller(), None, &moment());
        assert_eq!(answer.status, 400);
        assert!(answer.xml.contains("not a SOAP envelope"), "{}", answer.xml);
    }

    #[test]
    fn a_profile_to_create_is_refused_as_the_camera_has_all_it_can() {
        let answer = ask(
            &camera(true),
            Service::Media,
            TRT,
            "CreateProfile",
            "<o:Name>x</o:Name>",
        );
        assert_eq!(answer.status, 500);
        assert!(
            answer.xml.contains("<env:Value>ter:Action</env:Value><env:Subcode><env:Value>ter:MaxNVTProfiles</env:Value>"),
            "{}",
            answer.xml
        );
    }

    #[test]
    fn a_soap_1_1_request_is_answered_in_soap_1_1() {
        let camera = camera(false);
        let request = |op: &str| {
            format!(
                "<s:Envelope xmlns:s=\"{}\"><s:Body><{op} xmlns=\"{TDS}\"/></s:Body></s:Envelope>",
                soap::ENV11
            )
        };
        let answer = camera.answer(
            Service::Device,
            &request("GetSystemDateAndTime"),
            caller(),
            Some(&users()),
            &moment(),
        );
        assert_eq!(answer.status, 200, "{}", answer.xml);
        assert_eq!(answer.content_type, "text/xml; charset=utf-8");
        let doc = roxmltree::Document::parse(&answer.xml).unwrap();
        assert_eq!(doc.root_element().tag_name().namespace(), Some(soap::ENV11));
        assert!(answer.xml.contains("<tds:GetSystemDateAndTimeResponse>"));
        // A login is still needed (none was sent: HTTP Digest is asked
        // for), and its fault is a 1.1 one.
        let answer = camera.answer(
            Service::Device,
            &request("GetDeviceInformation"),
            caller(),
            Some(&users()),
            &moment(),
        );
        assert_eq!(answer.status, 401);
        assert!(
            answer
                .xml
                .contains("<faultcode>ter:NotAuthorized</faultcode>"),
            "{}",
            answer.xml
        );
        // SOAP 1.2 keeps its own content type.
        let answer = ask(&camera, Service::Device, TDS, "GetWsdlUrl", "");
        assert_eq!(answer.content_type, "application/soap+xml; charset=utf-8");
    }

    #[test]
    fn hosts_are_taken_from_the_host_header() {
        assert_eq!(host_name("cam.local:8080"), "cam.local");
        assert_eq!(host_name("[fe80::1]:8080"), "[fe80::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("192.0.2.1"), "192.0.2.1");
        assert_eq!(host_name(""), "streamcam.local");
        assert_eq!(http_url(caller(), "/x"), "http://192.0.2.1:8080/x");
        assert_eq!(host_port("cam.local:8080"), Some(8080));
        assert_eq!(host_port("[::1]:80"), Some(80));
        assert_eq!(host_port("[::1]"), None);
        assert_eq!(host_port("cam.local"), None);
    }
}
