//! A SOAP request to the ONVIF services, as any client on the network may
//! send it: parsed (no DTDs, a node cap), its token checked against one
//! user, answered by the device and media services; and, with no users,
//! by the event service and a subscription. Every answer must be
//! well-formed XML.
#![no_main]

use std::sync::LazyLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use streamcam::config::{AuthConfig, Config, UserConfig};
use streamcam::servers::auth::Auth;
use streamcam::servers::onvif::{Caller, Identity, Moment, Onvif, Service};

static CAMERA: LazyLock<Onvif> = LazyLock::new(|| {
    let config = Config::parse("[onvif]\n[substream]\n", "fuzz", None).expect("a valid config");
    let identity = Identity {
        model: "Raspberry Pi 3 Model B Plus Rev 1.3".into(),
        serial: "00000000a1b2c3d4".into(),
        interface: "eth0".into(),
        mac: "b8:27:eb:12:34:56".into(),
        hostname: "cam".into(),
    };
    Onvif::new(&config, 8554, identity)
});

static AUTH: LazyLock<Auth> = LazyLock::new(|| {
    Auth::new(&AuthConfig {
        users: vec![UserConfig {
            name: "admin".into(),
            password: Some("secret".into()),
            ha1: None,
        }],
        ..AuthConfig::default()
    })
    .expect("one user")
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let moment = Moment {
        now: Instant::now(),
        // The time the seeds' tokens were made.
        unix: 1_796_652_000,
        profile_idc: vec![Some(100), None],
    };
    let caller = Caller {
        client: "192.0.2.1".parse().unwrap(),
        secure: false,
        host: "192.0.2.2:8080",
        path: "/onvif/device_service",
        authorization: None,
    };
    for (service, auth) in [
        (Service::Device, Some(&*AUTH)),
        (Service::Media, Some(&*AUTH)),
        (Service::Events, None),
        (Service::Subscription(1), None),
    ] {
        let answer = CAMERA.answer(service, &text, caller, auth, &moment);
        assert!(
            roxmltree::Document::parse(&answer.xml).is_ok(),
            "not XML: {}",
            answer.xml
        );
    }
});
