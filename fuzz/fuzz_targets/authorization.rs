//! The `Authorization` header, as any client may write it, parsed and
//! checked against a server with one user.
#![no_main]

use std::sync::LazyLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use streamcam::config::{AuthConfig, UserConfig};
use streamcam::servers::auth::{Attempt, Auth, Credentials};

static AUTH: LazyLock<Auth> = LazyLock::new(|| {
    Auth::new(&AuthConfig {
        basic: true,
        users: vec![UserConfig {
            name: "viewer".into(),
            password: Some("secret".into()),
            ha1: None,
        }],
        ..AuthConfig::default()
    })
    .expect("one user")
});

static URL: LazyLock<url::Url> =
    LazyLock::new(|| url::Url::parse("rtsp://127.0.0.1:8554/stream").unwrap());

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = Credentials::parse(header);
        let _ = AUTH.check(&Attempt {
            method: "DESCRIBE",
            url: &URL,
            authorization: Some(header),
            client: "192.0.2.1".parse().unwrap(),
            secure: false,
            now: Instant::now(),
        });
    }
});
