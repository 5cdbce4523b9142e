//! The daemon: binds the RTSP port, starts the pipeline, the server and the
//! systemd notifier, and stops them all on SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, EX_CONFIG};
use crate::pushers::publish;
use crate::servers::{auth, discovery, http, onvif, rtsp};
use crate::{broadcast, motion, notify, pipeline, snapshot};

/// Longest the daemon spends saying goodbye to clients on SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(700);

/// Runs the daemon on its own tokio runtime until a signal stops it.
///
/// One thread does all network I/O: the camera and the encoder have their
/// own threads (the pipeline's), and what is left per access unit (one
/// `sendmmsg` for the UDP clients, one write per TCP client) is far less
/// than a core even on a Pi 3. A second worker thread costs more than it
/// gives: each access unit would wake it, and the thread switches cost
/// more CPU than the sends themselves (measured with `bench/run`).
pub fn run(config: Config) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let listen = config.server.listen;
    let Some(listener) = bind(listen, "server.listen").await else {
        return ExitCode::FAILURE;
    };
    let tls = match &config.tls {
        None => None,
        Some(tls_config) => {
            let tls = match crate::tls::load(tls_config) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!("cannot set up RTSPS: {e}");
                    return ExitCode::from(EX_CONFIG as u8);
                }
            };
            let Some(tls_listener) = bind(tls_config.listen, "tls.listen").await else {
                return ExitCode::FAILURE;
            };
            let local = tls_listener
                .local_addr()
                .map_or(tls_config.listen.to_string(), |a| a.to_string());
            tracing::info!(
                listen = %local,
                fingerprint = %tls.fingerprint,
                "RTSPS on {local}; watch rtsps://{}{}; certificate ({}) SHA-256 fingerprint {}",
                display_host(&local),
                config.server.path,
                tls.origin,
                tls.fingerprint
            );
            Some((tls_listener, tls.acceptor))
        }
    };

    let http_listener = match config.http.listen {
        None => None,
        Some(addr) => match bind(addr, "http.listen").await {
            Some(l) => Some(l),
            None => return ExitCode::FAILURE,
        },
    };
    let started = Instant::now();

    let stream = broadcast::Broadcast::new();
    let substream = config.substream.as_ref().map(|_| stream.sibling());
    let stills = Arc::new(snapshot::Stills::default());
    let mut taps = vec![Arc::clone(&stills) as Arc<dyn pipeline::tap::Tap>];
    let motion = config.motion.as_ref().map(|m| {
        // The overlay's clock changes every second: not motion.
        let overlay = crate::overlay::Overlay::configured(config.overlay.as_ref()).map(|o| {
            let [x, y, width, height] =
                o.area(config.video.width as usize, config.video.height as usize);
            motion::Area {
                x,
                y,
                width,
                height,
            }
        });
        let motion = motion::Motion::start(m, overlay);
        taps.push(Arc::clone(&motion) as Arc<dyn pipeline::tap::Tap>);
        motion
    });
    let outputs = pipeline::Outputs {
        main: Arc::clone(&stream),
        substream: substream.clone(),
        taps,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let pipeline = match pipeline::start(&config, outputs, Arc::clone(&stop)) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot start the video source: {e}");
            return ExitCode::from(EX_CONFIG as u8);
        }
    };
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let auth = auth::Auth::new(&config.auth).map(Arc::new);
    match &auth {
        Some(a) => tracing::info!(
            users = a.user_count(),
            realm = a.realm(),
            "authentication: {} user(s) in realm {:?}; Basic on plain RTSP {}",
            a.user_count(),
            a.realm(),
            if config.auth.basic {
                "allowed (auth.basic)"
            } else {
                "refused"
            }
        ),
        None => tracing::info!(
            "authentication: none ([auth] has no users): anyone who can reach {listen} can watch"
        ),
    }
    let fd_limit = rtsp::admission::raise_fd_limit();
    let max_connections = rtsp::admission::Admission::cap_for(fd_limit);
    tracing::info!(
        max_connections,
        fd_limit,
        "up to {max_connections} connections (open file limit {fd_limit}); at the limit the oldest without a session makes room"
    );
    if let Some(m) = &config.multicast {
        tracing::info!(
            "multicast: clients that ask for it get {}:{} (RTCP on {}), TTL {}; one copy of each packet for all of them",
            m.group,
            m.port,
            m.port + 1,
            m.ttl
        );
    }
    let audio = start_audio(&config, &stream, &stop);
    let mut mounts = vec![rtsp::mount::Mount {
        path: config.server.path.clone(),
        framerate: config.video.framerate,
        audio_channels: audio
            .as_ref()
            .and(config.audio.as_ref())
            .map(|a| a.channels),
    }];
    let mut streams = vec![Arc::clone(&stream)];
    if let (Some(sub), Some(sub_stream)) = (&config.substream, &substream) {
        mounts.push(rtsp::mount::Mount {
            path: sub.path.clone(),
            framerate: sub.video(&config.video).framerate,
            audio_channels: None,
        });
        streams.push(Arc::clone(sub_stream));
    }
    let onvif = config.onvif.as_ref().map(|_| {
        let port = listener.local_addr().map_or(listen.port(), |a| a.port());
        onvif_side(&config, port)
    });
    let info = rtsp::protocol::ServerInfo {
        mounts,
        sdp_session_id: rand::random::<u32>().into(),
        auth,
        multicast: config.multicast,
    };
    let ctx = rtsp::ServerContext::new(
        streams,
        audio,
        info,
        config.server.max_clients,
        max_connections,
        shutdown.clone(),
    );
    let local = listener
        .local_addr()
        .map_or(listen.to_string(), |a| a.to_string());
    let rtsp_port = listener.local_addr().map_or(listen.port(), |a| a.port());
    tracing::info!(
        listen = %local,
        "listening on {local}; watch rtsp://{}{}",
        display_host(&local),
        config.server.path
    );
    if let Some(sub) = &config.substream {
        tracing::info!(
            "substream at rtsp://{}{}: {}x{} at {} fps, {} bit/s",
            display_host(&local),
            sub.path,
            sub.width,
            sub.height,
            sub.video(&config.video).framerate,
            sub.bitrate
        );
    }
    let rtsps_port = tls
        .as_ref()
        .and_then(|(l, _)| l.local_addr().ok())
        .map(|a| a.port());
    let publishers = publish::Publishers::start(&config.publish, &stream, &shutdown);
    for target in publishers.targets() {
        tracing::info!(
            target_url = %target.shown,
            "publish[{}]: pushing the stream to {}",
            target.index,
            target.shown
        );
    }
    let discovery = match (&onvif, http_listener.as_ref().map(TcpListener::local_addr)) {
        (Some(side), Some(Ok(http))) if side.discoverable => {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let announcer = Arc::new(onvif::discovery::Announcer::new(side, unix));
            Some(tokio::spawn(discovery::run(
                announcer,
                http.ip(),
                http.port(),
                shutdown.clone(),
            )))
        }
        _ => None,
    };
    let http_server = http_listener.map(|http_listener| {
        let local = http_listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        let shown = display_host(&local);
        let also_https = if tls.is_some() {
            format!(" (and https://{shown}/ on the same port, with the RTSPS certificate)")
        } else {
            String::new()
        };
        tracing::info!(
            listen = %local,
            "HTTP on {local}: status page http://{shown}/{also_https}, snapshot \
             http://{shown}/snapshot.jpg, metrics http://{shown}/metrics"
        );
        let http_ctx = Arc::new(http::HttpContext {
            rtsp: Arc::clone(&ctx),
            rtsp_port,
            rtsps_port,
            started,
            publishers: Arc::clone(&publishers),
            stills: Arc::clone(&stills),
            viewers: http::context::Viewers::default(),
            tokens: http::tokens::Tokens::new(),
            onvif,
            motion: motion.clone(),
            #[cfg(feature = "webrtc")]
            whep: http::context::WebrtcViewers::default(),
        });
        let https = tls.as_ref().map(|(_, acceptor)| acceptor.clone());
        tokio::spawn(http::serve(http_listener, http_ctx, https))
    });
    let server = tokio::spawn(rtsp::serve(listener, Arc::clone(&ctx), None));
    let tls_server = tls.map(|(listener, acceptor)| {
        tokio::spawn(rtsp::serve(listener, Arc::clone(&ctx), Some(acceptor)))
    });
    let notifier = tokio::spawn(notify::run(
        Arc::clone(&stream),
        Arc::clone(&publishers),
        shutdown.clone(),
    ));

    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            tracing::error!("cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    let _ = shutdown_tx.send(true);
    stop.store(true, Ordering::Relaxed);
    // Sessions send BYE and leave the table; wait for them, briefly.
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !ctx.sessions.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = notifier.await;
    // WS-Discovery's Bye, sent as it stops.
    if let Some(d) = discovery {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, d).await;
    }
    server.abort();
    if let Some(t) = tls_server {
        t.abort();
    }
    if let Some(h) = http_server {
        h.abort();
    }
    drop(pipeline);
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// With `[audio]`, the main stream's sound: its broadcast, fed by the
/// microphone's own thread until `stop`.
#[cfg(feature = "audio")]
fn start_audio(
    config: &Config,
    stream: &broadcast::Broadcast,
    stop: &Arc<AtomicBool>,
) -> Option<Arc<broadcast::Broadcast>> {
    let audio_config = config.audio.as_ref()?;
    let audio = stream.audio_sibling();
    // The thread ends by itself once `stop` is set.
    drop(crate::audio::start(
        audio_config,
        Arc::clone(&audio),
        Arc::clone(stop),
    ));
    Some(audio)
}

/// Without the `audio` feature there is none (the configuration refuses
/// `[audio]`).
#[cfg(not(feature = "audio"))]
fn start_audio(
    _config: &Config,
    _stream: &broadcast::Broadcast,
    _stop: &Arc<AtomicBool>,
) -> Option<Arc<broadcast::Broadcast>> {
    None
}

/// Binds `addr` (the setting `key`), logging why not with a hint.
async fn bind(addr: std::net::SocketAddr, key: &str) -> Option<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "another program (perhaps another streamcam) uses this port; stop it or change {key}"
                ),
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need CAP_NET_BIND_SERVICE (the shipped systemd unit grants it) or root".into()
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    "this machine has no such address; use 0.0.0.0 or [::] to listen everywhere".into()
                }
                _ => format!("check {key}"),
            };
            tracing::error!("cannot listen on {addr}: {e}: {hint}");
            None
        }
    }
}

/// "rtsp://HOST:PORT" for a listen address, naming this machine when it
/// listens everywhere.
/// The ONVIF side of `config` (`[onvif]`), with the RTSP port the stream
/// URLs give, and the log lines that say what it offers and who cannot
/// log in to it.
fn onvif_side(config: &Config, rtsp_port: u16) -> onvif::Onvif {
    let side = onvif::Onvif::new(config, rtsp_port, onvif::Identity::of_this_machine());
    tracing::info!(
        "ONVIF: device and media services at /onvif/device_service on the HTTP port, as {:?} \
         ({}, MAC {}); {} profile(s)",
        side.name,
        side.identity.model,
        side.identity.mac,
        side.profiles.len()
    );
    for user in config.auth.users.iter().filter(|u| u.password.is_none()) {
        tracing::warn!(
            "ONVIF: user {:?} has only an ha1: ONVIF clients send a password digest that only \
             the password can check, so this user cannot log in there (give it `password`)",
            user.name
        );
    }
    side
}

fn display_host(local: &str) -> String {
    local
        .replace("0.0.0.0", "<this-machine>")
        .replace("[::]", "<this-machine>")
}
