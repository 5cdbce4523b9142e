//! A client's bytes on an RTSP connection: requests and interleaved frames
//! are split off (`message::next_input`), and every request goes through
//! the protocol state machine, with a session table that knows the
//! sessions the effects created: once for a server open to anyone, once
//! for one with users (every request then meets the credential check).
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use streamcam::config::{AuthConfig, MulticastConfig, UserConfig};
use streamcam::servers::auth::Auth;
use streamcam::servers::rtsp::effect::{
    Carriage, Created, Done, Effect, Output, PlayStart, SessionId, Sessions,
};
use streamcam::servers::rtsp::message::{self, Input};
use streamcam::servers::rtsp::mount::Mount;
use streamcam::servers::rtsp::protocol::{Protocol, ServerInfo};
use streamcam::servers::rtsp::transport::Transport;

#[derive(Default)]
struct Table(RefCell<HashMap<SessionId, Carriage>>);

impl Sessions for Table {
    fn find(&self, id: SessionId) -> Option<Carriage> {
        self.0.borrow().get(&id).copied()
    }
}

static AUTH: LazyLock<Arc<Auth>> = LazyLock::new(|| {
    let users = vec![UserConfig {
        name: "viewer".into(),
        password: Some("secret".into()),
        ha1: None,
    }];
    Arc::new(
        Auth::new(&AuthConfig {
            users,
            ..AuthConfig::default()
        })
        .expect("one user"),
    )
});

fuzz_target!(|data: &[u8]| {
    for auth in [None, Some(Arc::clone(&AUTH))] {
        run(data, auth);
    }
});

fn run(data: &[u8], auth: Option<Arc<Auth>>) {
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let server = ServerInfo {
        mounts: vec![
            Mount {
                path: "/stream".into(),
                framerate: 30,
                audio_channels: Some(1),
            },
            Mount {
                path: "/sub".into(),
                framerate: 10,
                audio_channels: None,
            },
        ],
        sdp_session_id: 1,
        auth,
        multicast: Some(MulticastConfig::default()),
    };
    let table = Table::default();
    let mut protocol = Protocol::new(local, local);
    let mut buf = BytesMut::from(data);
    let mut next_id = 1;
    while let Ok(Some(input)) = message::next_input(&mut buf) {
        let Input::Request(req) = input else { continue };
        let mut out = protocol.handle(&req, &server, &table, Instant::now());
        while let Output::Effect(effect) = out {
            let done = match effect {
                Effect::Describe(_) => Done::Described(None),
                Effect::CreateSession(_, _, t) | Effect::AddTrack(_, _, _, t) => {
                    next_id += 1;
                    let id = SessionId(next_id);
                    let carriage = match t {
                        Transport::Udp { .. } => Carriage::Udp,
                        Transport::Interleaved { .. } => Carriage::Interleaved,
                        Transport::Multicast(_) => Carriage::Multicast,
                    };
                    table.0.borrow_mut().insert(id, carriage);
                    Done::Created(Created {
                        id,
                        ssrc: 1,
                        server_ports: Some((6970, 6971)),
                    })
                }
                Effect::Play(_) => Done::Playing(vec![PlayStart {
                    track: 0,
                    seq: 1,
                    rtptime: 1,
                }]),
                Effect::Pause(_) => Done::Paused,
                Effect::Teardown(id) => {
                    table.0.borrow_mut().remove(&id);
                    Done::TornDown
                }
            };
            out = protocol.complete(done, &server);
        }
        if let Output::Reply { response, .. } = out {
            let mut bytes = Vec::new();
            message::write_response(&mut bytes, response);
        }
    }
}
