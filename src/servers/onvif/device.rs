//! ONVIF's device service (ver10): who the camera is, its clock, its
//! network and which services it has. Settings cannot be changed through
//! it: the configuration file is the one place they live.

use super::camera::{Caller, DEVICE_PATH, MEDIA_PATH, Moment, Onvif, http_url};
use super::events::EVENTS_PATH;
use super::soap::{Fault, Request, TDS, TEV, TRT, esc};
use crate::format::civil::Civil;

/// The operations answered (for the tests, which call each).
#[cfg(test)]
pub(super) const OPERATIONS: [&str; 16] = [
    "GetSystemDateAndTime",
    "SetSystemDateAndTime",
    "GetCapabilities",
    "GetServices",
    "GetServiceCapabilities",
    "GetDeviceInformation",
    "GetNetworkInterfaces",
    "GetScopes",
    "GetHostname",
    "GetNTP",
    "GetDNS",
    "GetNetworkProtocols",
    "GetDiscoveryMode",
    "GetNetworkDefaultGateway",
    "GetEndpointReference",
    "GetWsdlUrl",
];

/// The ONVIF version the services follow (the schema's).
const VERSION: (u32, u32) = (2, 5);

/// The body of the answer to a device service request.
pub(super) fn answer(
    camera: &Onvif,
    request: &Request,
    caller: Caller,
    moment: &Moment,
) -> Result<String, Fault> {
    let (_, op) = request.operation();
    let id = &camera.identity;
    let body = match op {
        "GetSystemDateAndTime" => {
            let c = Civil::from_unix(moment.unix);
            format!(
                "<tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>\
                 <tt:DaylightSavings>false</tt:DaylightSavings>\
                 <tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>\
                 <tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute>\
                 <tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year>\
                 <tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:UTCDateTime>\
                 </tds:SystemDateAndTime>",
                c.hour, c.minute, c.second, c.year, c.month, c.day
            )
        }
        // Accepted and ignored: the camera's clock is set by NTP.
        "SetSystemDateAndTime" => String::new(),
        "GetCapabilities" => capabilities(camera, request, caller)?,
        "GetServices" => services(camera, request, caller),
        "GetServiceCapabilities" => service_capabilities(camera),
        "GetDeviceInformation" => format!(
            "<tds:Manufacturer>streamcam</tds:Manufacturer><tds:Model>{}</tds:Model>\
             <tds:FirmwareVersion>{}</tds:FirmwareVersion><tds:SerialNumber>{}</tds:SerialNumber>\
             <tds:HardwareId>{}</tds:HardwareId>",
            esc(&id.model),
            env!("CARGO_PKG_VERSION"),
            esc(&id.serial),
            esc(&id.model)
        ),
        "GetNetworkInterfaces" => format!(
            "<tds:NetworkInterfaces token=\"{0}\"><tt:Enabled>true</tt:Enabled>\
             <tt:Info><tt:Name>{0}</tt:Name><tt:HwAddress>{1}</tt:HwAddress></tt:Info>\
             </tds:NetworkInterfaces>",
            esc(&id.interface),
            esc(&id.mac)
        ),
        "GetScopes" => scopes(camera)
            .iter()
            .map(|s| {
                format!(
                    "<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{}</tt:ScopeItem></tds:Scopes>",
                    esc(s)
                )
            })
            .collect(),
        "GetHostname" => format!(
            "<tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP><tt:Name>{}</tt:Name>\
             </tds:HostnameInformation>",
            esc(&id.hostname)
        ),
        "GetNTP" => "<tds:NTPInformation><tt:FromDHCP>true</tt:FromDHCP></tds:NTPInformation>".into(),
        "GetDNS" => "<tds:DNSInformation><tt:FromDHCP>true</tt:FromDHCP></tds:DNSInformation>".into(),
        "GetNetworkDefaultGateway" => "<tds:NetworkGateway/>".into(),
        "GetNetworkProtocols" => {
            let http_port = super::camera::host_port(caller.host).unwrap_or(80);
            format!(
                "<tds:NetworkProtocols><tt:Name>HTTP</tt:Name><tt:Enabled>true</tt:Enabled>\
                 <tt:Port>{http_port}</tt:Port></tds:NetworkProtocols>\
                 <tds:NetworkProtocols><tt:Name>RTSP</tt:Name><tt:Enabled>true</tt:Enabled>\
                 <tt:Port>{}</tt:Port></tds:NetworkProtocols>",
                camera.rtsp_port
            )
        }
        // No WS-Discovery responder yet.
        "GetDiscoveryMode" => format!(
            "<tds:DiscoveryMode>{}</tds:DiscoveryMode>",
            if camera.discoverable {
                "Discoverable"
            } else {
                "NonDiscoverable"
            }
        ),
        "GetEndpointReference" => format!("<tds:GUID>{}</tds:GUID>", esc(&endpoint(camera))),
        // The camera serves no WSDL of its own: ONVIF publishes them.
        "GetWsdlUrl" => {
            "<tds:WsdlUrl>http://www.onvif.org/ver10/device/wsdl/devicemgmt.wsdl</tds:WsdlUrl>".into()
        }
        other => return Err(Fault::ActionNotSupported(other.to_owned())),
    };
    Ok(format!("<tds:{op}Response>{body}</tds:{op}Response>"))
}

/// The scopes: what the camera is, for NVRs to list and filter on.
pub(super) fn scopes(camera: &Onvif) -> Vec<String> {
    let segment = |text: &str| {
        // A scope is a URI: its segments percent-encoded (':' may stay,
        // so the mac scope reads as the interface's address).
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                    char::from(b).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let mut scopes = vec![
        "onvif://www.onvif.org/Profile/Streaming".to_owned(),
        "onvif://www.onvif.org/type/video_encoder".to_owned(),
        format!("onvif://www.onvif.org/name/{}", segment(&camera.name)),
        format!(
            "onvif://www.onvif.org/hardware/{}",
            segment(&camera.identity.model)
        ),
        format!(
            "onvif://www.onvif.org/mac/{}",
            segment(&camera.identity.mac)
        ),
    ];
    if !camera.location.is_empty() {
        scopes.push(format!(
            "onvif://www.onvif.org/location/{}",
            segment(&camera.location)
        ));
    }
    scopes
}

/// The camera's stable endpoint reference: a UUID made from its MAC.
pub(super) fn endpoint(camera: &Onvif) -> String {
    let mac: String = camera
        .identity
        .mac
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    format!("urn:uuid:5c0de5a1-7ea3-4c5a-8d1e-{mac:0>12}")
}

/// `GetCapabilities`: the device, media and event services (imaging and
/// PTZ are not offered, so not advertised).
fn capabilities(camera: &Onvif, request: &Request, caller: Caller) -> Result<String, Fault> {
    let category = request.arg("Category").unwrap_or("All");
    let device = format!(
        "<tt:Device><tt:XAddr>{}</tt:XAddr><tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve>\
         <tt:DiscoveryBye>{}</tt:DiscoveryBye><tt:RemoteDiscovery>false</tt:RemoteDiscovery>\
         <tt:SystemBackup>false</tt:SystemBackup><tt:SystemLogging>false</tt:SystemLogging>\
         <tt:FirmwareUpgrade>false</tt:FirmwareUpgrade><tt:SupportedVersions><tt:Major>{}</tt:Major>\
         <tt:Minor>{}</tt:Minor></tt:SupportedVersions></tt:System></tt:Device>",
        http_url(caller, DEVICE_PATH),
        camera.discoverable,
        VERSION.0,
        VERSION.1
    );
    let media = format!(
        "<tt:Media><tt:XAddr>{}</tt:XAddr><tt:StreamingCapabilities>\
         <tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>\
         <tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>",
        http_url(caller, MEDIA_PATH)
    );
    let events = format!(
        "<tt:Events><tt:XAddr>{}</tt:XAddr><tt:WSSubscriptionPolicySupport>false\
         </tt:WSSubscriptionPolicySupport><tt:WSPullPointSupport>true</tt:WSPullPointSupport>\
         <tt:WSPausableSubscriptionManagerInterfaceSupport>false\
         </tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>",
        http_url(caller, EVENTS_PATH)
    );
    // The schema's order: Analytics, Device, Events, Imaging, Media, PTZ.
    let inner = match category {
        "All" => format!("{device}{events}{media}"),
        "Device" => device,
        "Events" => events,
        "Media" => media,
        other => {
            return Err(Fault::InvalidArgVal(
                "NoSuchService",
                format!("this camera has no {other} service"),
            ));
        }
    };
    Ok(format!("<tds:Capabilities>{inner}</tds:Capabilities>"))
}

/// `GetServices`: the device, media and event services, with their
/// capabilities when asked.
fn services(camera: &Onvif, request: &Request, caller: Caller) -> String {
    let include = request.arg("IncludeCapability") == Some("true");
    [(TDS, DEVICE_PATH), (TRT, MEDIA_PATH), (TEV, EVENTS_PATH)]
        .iter()
        .map(|&(ns, path)| {
            let capabilities = match (include, ns) {
                (false, _) => String::new(),
                (true, TDS) => service_capabilities(camera),
                (true, TRT) => super::media::service_capabilities(),
                (true, _) => super::events::service_capabilities(),
            };
            let capabilities = if include {
                format!("<tds:Capabilities>{capabilities}</tds:Capabilities>")
            } else {
                capabilities
            };
            format!(
                "<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{}</tds:XAddr>\
                 {capabilities}<tds:Version><tt:Major>{}</tt:Major><tt:Minor>{}</tt:Minor></tds:Version>\
                 </tds:Service>",
                http_url(caller, path),
                VERSION.0,
                VERSION.1
            )
        })
        .collect()
}

/// The device service's `tds:Capabilities` (a Bye is said when the
/// camera is discoverable).
fn service_capabilities(camera: &Onvif) -> String {
    format!(
        "<tds:Capabilities><tds:Network IPFilter=\"false\" ZeroConfiguration=\"false\" \
         IPVersion6=\"true\" DynDNS=\"false\"/><tds:Security UsernameToken=\"true\" \
         HttpDigest=\"true\"/><tds:System DiscoveryResolve=\"false\" DiscoveryBye=\"{}\" \
         RemoteDiscovery=\"false\" SystemBackup=\"false\" SystemLogging=\"false\" \
         FirmwareUpgrade=\"false\"/><tds:Misc/></tds:Capabilities>",
        camera.discoverable
    )
}

#[cfg(test)]
mod tests {
    use super::super::Service;
    use super::super::tests::{ask, camera, moment};
    use super::*;

    #[test]
    fn the_clock_is_utc_from_ntp() {
        let xml = ask(
            &camera(false),
            Service::Device,
            TDS,
            "GetSystemDateAndTime",
            "",
        )
        .xml;
        assert!(
            xml.contains("<tt:DateTimeType>NTP</tt:DateTimeType>"),
            "{xml}"
        );
        // 2026-12-07T13:25:09Z: Time before Date, as the schema orders them.
        assert!(xml.contains(
            "<tt:Time><tt:Hour>13</tt:Hour><tt:Minute>25</tt:Minute><tt:Second>9</tt:Second></tt:Time>\
             <tt:Date><tt:Year>2026</tt:Year><tt:Month>12</tt:Month><tt:Day>7</tt:Day></tt:Date>"
        ), "{xml}");
        assert_eq!(moment().unix, 1_796_649_909);
    }

    #[test]
    fn services_and_capabilities_point_where_the_client_called() {
        let c = camera(false);
        let xml = ask(
            &c,
            Service::Device,
            TDS,
            "GetCapabilities",
            "<o:Category>All</o:Category>",
        )
        .xml;
        assert!(
            xml.contains("<tt:XAddr>http://192.0.2.1:8080/onvif/device_service</tt:XAddr>"),
            "{xml}"
        );
        assert!(
            xml.contains("<tt:XAddr>http://192.0.2.1:8080/onvif/media_service</tt:XAddr>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<tt:Events><tt:XAddr>http://192.0.2.1:8080/onvif/events_service</tt:XAddr>"
            ),
            "{xml}"
        );
        assert!(!xml.contains("PTZ") && !xml.contains("Imaging"));
        let xml = ask(
            &c,
            Service::Device,
            TDS,
            "GetCapabilities",
            "<o:Category>PTZ</o:Category>",
        )
        .xml;
        assert!(xml.contains("ter:NoSuchService"), "{xml}");
        let xml = ask(
            &c,
            Service::Device,
            TDS,
            "GetServices",
            "<o:IncludeCapability>false</o:IncludeCapability>",
        )
        .xml;
        assert!(
            xml.contains(&format!("<tds:Namespace>{TRT}</tds:Namespace>")),
            "{xml}"
        );
        assert!(!xml.contains("Capabilities"), "{xml}");
        let xml = ask(
            &c,
            Service::Device,
            TDS,
            "GetServices",
            "<o:IncludeCapability>true</o:IncludeCapability>",
        )
        .xml;
        assert!(xml.contains("SnapshotUri=\"true\""), "{xml}");
    }

    #[test]
    fn the_camera_says_who_it_is() {
        let c = camera(true);
        let xml = ask(&c, Service::Device, TDS, "GetNetworkInterfaces", "").xml;
        assert!(
            xml.contains("<tt:HwAddress>b8:27:eb:12:34:56</tt:HwAddress>"),
            "{xml}"
        );
        let xml = ask(&c, Service::Device, TDS, "GetScopes", "").xml;
        for scope in [
            "onvif://www.onvif.org/Profile/Streaming",
            "onvif://www.onvif.org/name/Front%20%26%20back",
            "onvif://www.onvif.org/hardware/Raspberry%20Pi%203%20Model%20B%20Plus%20Rev%201.3",
            "onvif://www.onvif.org/mac/b8:27:eb:12:34:56",
        ] {
            assert!(
                xml.contains(&format!("<tt:ScopeItem>{scope}</tt:ScopeItem>")),
                "{scope}: {xml}"
            );
        }
        let xml = ask(&c, Service::Device, TDS, "GetNetworkProtocols", "").xml;
        assert!(
            xml.contains(
                "<tt:Name>RTSP</tt:Name><tt:Enabled>true</tt:Enabled><tt:Port>8554</tt:Port>"
            ),
            "{xml}"
        );
        assert!(xml.contains("<tt:Port>8080</tt:Port>"), "{xml}");
        assert_eq!(
            endpoint(&c),
            "urn:uuid:5c0de5a1-7ea3-4c5a-8d1e-b827eb123456"
        );
    }
}
