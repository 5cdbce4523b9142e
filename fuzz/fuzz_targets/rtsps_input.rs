//! A client's bytes on the RTSPS port: first as TLS records into the
//! server side of rustls with the daemon's own TLS setup (a self-signed
//! certificate), then as the plaintext a finished handshake would hand on,
//! through the protocol of a connection inside TLS with users configured.
#![no_main]

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use streamcam::config::{AuthConfig, MulticastConfig, TlsConfig, UserConfig};
use streamcam::servers::auth::Auth;
use streamcam::servers::rtsp::effect::{Carriage, Output, SessionId, Sessions};
use streamcam::servers::rtsp::message::{self, Input};
use streamcam::servers::rtsp::mount::Mount;
use streamcam::servers::rtsp::protocol::{Protocol, ServerInfo};

static TLS: LazyLock<Arc<rustls::ServerConfig>> = LazyLock::new(|| {
    let store = std::env::temp_dir().join(format!("streamcam-fuzz-tls-{}", std::process::id()));
    let config = TlsConfig {
        store,
        ..TlsConfig::default()
    };
    let tls = streamcam::tls::load(&config).expect("a self-signed certificate");
    Arc::clone(tls.acceptor.config())
});

static SERVER: LazyLock<ServerInfo> = LazyLock::new(|| {
    let users = vec![UserConfig {
        name: "viewer".into(),
        password: Some("secret".into()),
        ha1: None,
    }];
    let auth = Auth::new(&AuthConfig {
        basic: false,
        users,
        ..AuthConfig::default()
    });
    ServerInfo {
        mounts: vec![Mount {
            path: "/stream".into(),
            framerate: 30,
            audio_channels: Some(2),
        }],
        sdp_session_id: 1,
        auth: auth.map(Arc::new),
        multicast: Some(MulticastConfig::default()),
    }
});

/// No session is live: requests that would create one stop at their effect.
struct NoSessions;

impl Sessions for NoSessions {
    fn find(&self, _: SessionId) -> Option<Carriage> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let mut conn = rustls::ServerConnection::new(Arc::clone(&TLS)).expect("a server connection");
    let mut records = Cursor::new(data);
    while records.position() < data.len() as u64 {
        match conn.read_tls(&mut records) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    break;
                }
            }
        }
    }
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut protocol = Protocol::new(local, local).over_tls();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(input)) = message::next_input(&mut buf) {
        let Input::Request(req) = input else { continue };
        if let Output::Reply { response, .. } =
            protocol.handle(&req, &SERVER, &NoSessions, Instant::now())
        {
            let mut bytes = Vec::new();
            message::write_response(&mut bytes, response);
        } else {
            // An effect would need the I/O layer: a fresh connection goes on.
            protocol = Protocol::new(local, local).over_tls();
        }
    }
});
