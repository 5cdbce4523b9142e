//! The HTTP side: a status page for people with the live picture (`/`,
//! its video from [`live`]) and Prometheus metrics (`/metrics`), behind
//! the same users as RTSP (`[auth]`, HTTP Digest).
//!
//! HTTP/1.1 by hyper, on the daemon's one I/O thread. Its connections are
//! admitted like RTSP ones (the same cap on open files: at the cap the
//! oldest connection without a session is closed), and a request's headers
//! must arrive within [`HEADER_TIMEOUT`].

pub mod context;
pub mod live;
mod metrics;
pub mod reply;
mod status;
pub mod tokens;
#[cfg(feature = "webrtc")]
pub mod whep;

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::servers::auth::{Attempt, Verdict};
use crate::servers::onvif;
use crate::servers::rtsp::mount::MountIndex;
use crate::snapshot;
pub use context::HttpContext;
use reply::{body, plain};

/// Longest a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The kernel's send buffer for HTTP connections (it doubles the figure).
/// Fixed rather than grown by the kernel (up to megabytes) so that a live
/// viewer that stops reading blocks the server's writes within seconds,
/// and is dropped, instead of having seconds of old picture queued.
const SEND_BUFFER: usize = 128 * 1024;

/// Who is on the other end of a connection, and how.
#[derive(Debug, Clone, Copy)]
struct Conn {
    /// The client's address.
    client: IpAddr,
    /// The address the client reached (where media for it is sent from).
    #[cfg_attr(
        not(feature = "webrtc"),
        allow(dead_code, reason = "WebRTC's media goes out from it")
    )]
    local: IpAddr,
    /// Inside TLS.
    secure: bool,
}

/// Serves HTTP on `listener` until the daemon stops, and HTTPS on the same
/// port when `tls` is given (told apart by the client's first byte).
pub async fn serve(listener: TcpListener, ctx: Arc<HttpContext>, tls: Option<TlsAcceptor>) {
    let mut shutdown = ctx.rtsp.shutdown.clone();
    if ctx.onvif.is_some() {
        // ONVIF's events follow the main stream's state, and motion.
        let ctx = Arc::clone(&ctx);
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let (Some(onvif), Some(stream)) = (&ctx.onvif, ctx.rtsp.streams.first()) {
                let motion = async {
                    match &ctx.motion {
                        Some(motion) => onvif.events.follow_motion(motion.events()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = onvif.events.follow(stream.watch_info()) => {}
                    () = motion => {}
                    _ = crate::service::shutdown::stopped(&mut shutdown) => {}
                }
            }
        });
    }
    loop {
        let accepted = tokio::select! {
            _ = crate::service::shutdown::stopped(&mut shutdown) => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // At the cap (every connection carries an RTSP session), the new
        // one is closed at once: those sessions come first.
        let Ok(ticket) = ctx.rtsp.admission.admit(Instant::now()) else {
            continue;
        };
        if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!("HTTP connection's send buffer: {e}");
        }
        let ctx = Arc::clone(&ctx);
        let tls = tls.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let client = peer.ip().to_canonical();
            let local = stream
                .local_addr()
                .map_or(client, |a| a.ip().to_canonical());
            let conn = |secure| Conn {
                client,
                local,
                secure,
            };
            let served = async {
                let hello = match tls {
                    None => Some(false),
                    Some(_) => tls_hello(&stream).await,
                };
                match (tls, hello) {
                    // Silent for the whole header timeout: closed.
                    (_, None) => {}
                    (Some(acceptor), Some(true)) => {
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => connection(tls, &ctx, conn(true)).await,
                            Ok(Err(e)) => tracing::debug!(%client, "HTTPS handshake: {e}"),
                            Err(_) => tracing::debug!(%client, "HTTPS handshake timed out"),
                        }
                    }
                    _ => connection(stream, &ctx, conn(false)).await,
                }
            };
            tokio::select! {
                () = served => {}
                () = ticket.evicted() => {}
                _ = crate::service::shutdown::stopped(&mut shutdown) => {}
            }
        });
    }
}

/// True if the client opens with a TLS handshake record (HTTPS), false for
/// plain HTTP; `None` if it sends nothing within [`HEADER_TIMEOUT`].
async fn tls_hello(stream: &tokio::net::TcpStream) -> Option<bool> {
    const HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0] == HANDSHAKE_RECORD),
        _ => None,
    }
}

/// Serves HTTP/1.1 on one connection (`secure`: inside TLS).
async fn connection<I>(io: I, ctx: &Arc<HttpContext>, conn: Conn)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(|req| {
        let ctx = Arc::clone(ctx);
        async move { Ok::<_, Infallible>(respond(&ctx, conn, req).await) }
    });
    // An upgraded connection (the live picture's WebSocket) leaves this
    // task: its viewer task holds a ticket of its own.
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = served.await {
        tracing::debug!(client = %conn.client, "HTTP connection: {e}");
    }
}

/// The answer to one request.
async fn respond(
    ctx: &Arc<HttpContext>,
    conn: Conn,
    mut req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    #[cfg(feature = "webrtc")]
    if req.uri().path().starts_with(whep::PATH) {
        return webrtc(ctx, conn, req).await;
    }
    if let (Some(onvif), Some(service)) = (&ctx.onvif, onvif::Service::at(req.uri().path())) {
        return onvif_request(ctx, onvif, service, conn, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if let Some(mount) = live::mount_of(req.uri().path(), ctx.rtsp.streams.len()) {
        return live_view(ctx, conn, &mut req, mount);
    }
    if let Some(refused) = check_auth(ctx, conn, &req) {
        return refused;
    }
    let mut response = match req.uri().path() {
        "/" => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("streamcam.local");
            body(
                StatusCode::OK,
                "text/html; charset=utf-8",
                status::page(ctx, host),
            )
        }
        "/metrics" => body(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(ctx),
        ),
        "/snapshot.jpg" => snapshot(ctx, req.uri().query()).await,
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: see /, /snapshot.jpg, /metrics and /stream.ws\n",
        ),
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if req.method() == Method::HEAD {
        *response.body_mut() = Full::default();
    }
    response
}

/// The live picture's ways in (its WebSocket, WHEP) take a token from the
/// page, or the same credentials as any other request. `None` if the
/// request may go on.
fn let_in<B>(ctx: &HttpContext, conn: Conn, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
    let token_ok = live::token_of(req).is_some_and(|t| ctx.tokens.verify(t, Instant::now()));
    if token_ok {
        None
    } else {
        check_auth(ctx, conn, req)
    }
}

/// The live picture's WebSocket.
fn live_view(
    ctx: &Arc<HttpContext>,
    conn: Conn,
    req: &mut Request<Incoming>,
    mount: MountIndex,
) -> Response<Full<Bytes>> {
    if let Some(refused) = let_in(ctx, conn, req) {
        return refused;
    }
    live::upgrade(ctx, conn.client, req, mount).unwrap_or_else(|| {
        let mut r = plain(
            StatusCode::UPGRADE_REQUIRED,
            "the live picture is a WebSocket: open / in a browser\n",
        );
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        r
    })
}

/// WHEP: POST an offer to [`whep::PATH`], DELETE the session it made.
#[cfg(feature = "webrtc")]
async fn webrtc(
    ctx: &Arc<HttpContext>,
    conn: Conn,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    use http_body_util::{BodyExt as _, Limited};
    if let Some(refused) = let_in(ctx, conn, &req) {
        return refused;
    }
    let is_endpoint = req.uri().path() == whep::PATH;
    match (req.method().clone(), is_endpoint) {
        (Method::POST, true) => {
            match Limited::new(req.into_body(), whep::MAX_OFFER)
                .collect()
                .await
            {
                Ok(offer) => whep::offer(ctx, conn.client, conn.local, &offer.to_bytes()).await,
                Err(_) => plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the offer is too large or was cut off\n",
                ),
            }
        }
        (Method::DELETE, false) => whep::delete(ctx, req.uri().path()),
        (_, endpoint) => {
            let mut r = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST an offer; DELETE a session\n",
            );
            let allow = if endpoint { "POST" } else { "DELETE" };
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            r
        }
    }
}

/// An ONVIF service: a SOAP request POSTed, its login in the SOAP header
/// or, without one, by HTTP Digest (both checked by `onvif`).
async fn onvif_request(
    ctx: &HttpContext,
    onvif: &onvif::Onvif,
    service: onvif::Service,
    conn: Conn,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    use http_body_util::{BodyExt as _, Limited};
    if req.method() != Method::POST {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "an ONVIF service: POST a SOAP request\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let header_text = |name| {
        req.headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    };
    let host = header_text(header::HOST).unwrap_or_default();
    let authorization = header_text(header::AUTHORIZATION);
    let path = req.uri().path().to_owned();
    // The whole body within the header timeout: a client that trickles
    // it holds no connection for long.
    let collected = tokio::time::timeout(
        HEADER_TIMEOUT,
        Limited::new(req.into_body(), onvif::soap::MAX_BODY).collect(),
    )
    .await;
    let request = match collected {
        Ok(Ok(request)) => request.to_bytes(),
        Ok(Err(_)) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the SOAP request is too large or was cut off\n",
            );
        }
        Err(_) => {
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                "the SOAP request did not arrive in time\n",
            );
        }
    };
    let mut profile_idc = Vec::new();
    for stream in &ctx.rtsp.streams {
        let params = stream.parameter_sets(Duration::ZERO).await;
        profile_idc.push(params.and_then(|p| p.sps.get(1).copied()));
    }
    let moment = |profile_idc| onvif::Moment {
        now: Instant::now(),
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        profile_idc,
    };
    let caller = onvif::Caller {
        client: conn.client,
        secure: conn.secure,
        host: &host,
        path: &path,
        authorization: authorization.as_deref(),
    };
    let text = String::from_utf8_lossy(&request);
    let auth = ctx.rtsp.info.auth.as_deref();
    let answer = match onvif.respond(service, &text, caller, auth, &moment(profile_idc)) {
        onvif::Reply::Now(answer) => answer,
        // A PullMessages with nothing yet: held (past the header timeout,
        // at most a minute, one per subscription) until something comes.
        onvif::Reply::Wait(wait) => {
            onvif.events.wait(&wait).await;
            onvif.pulled(&wait, &moment(Vec::new()))
        }
    };
    let mut r = body(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.content_type,
        answer.xml,
    );
    for challenge in answer.challenges {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    r
}

/// `/snapshot.jpg[?width=N]`: the newest picture as JPEG.
async fn snapshot(ctx: &HttpContext, query: Option<&str>) -> Response<Full<Bytes>> {
    let width = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("width="));
    let width = match width.map(str::parse::<u32>) {
        None => None,
        Some(Ok(w)) if w >= snapshot::MIN_WIDTH => Some(w),
        Some(_) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "width must be a whole number of pixels, 16 or more\n",
            );
        }
    };
    match ctx.stills.jpeg(width).await {
        Ok(jpeg) => {
            let mut r = Response::new(Full::new(jpeg));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            r
        }
        Err(e) => {
            let why = match ctx.rtsp.stream().info().error {
                Some(pipeline) => format!("no picture: {pipeline}\n"),
                None => format!("no picture: {e}\n"),
            };
            let mut r = Response::new(Full::new(Bytes::from(why)));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    }
}

/// `None` if the request may go on, else the answer that refuses it.
fn check_auth<B>(ctx: &HttpContext, conn: Conn, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
    let Conn { client, secure, .. } = conn;
    let auth = ctx.rtsp.info.auth.as_ref()?;
    // The Digest `uri` names the request target; the scheme and host are
    // not signed, so any will do for the comparison.
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = url::Url::parse("http://streamcam")
        .ok()?
        .join(target)
        .ok()?;
    let now = Instant::now();
    let attempt = Attempt {
        method: req.method().as_str(),
        url: &url,
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok()),
        client,
        secure,
        now,
    };
    match auth.check(&attempt) {
        Verdict::Allowed { .. } => None,
        Verdict::Challenge { stale } => {
            let mut r = plain(
                StatusCode::UNAUTHORIZED,
                "a user name and password are needed\n",
            );
            for challenge in auth.challenges(stale, secure, now) {
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    r.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
            Some(r)
        }
        Verdict::Throttled { retry_after } => {
            let mut r = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many failed logins from this address: wait\n",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry_after.as_secs().max(1).into());
            Some(r)
        }
    }
}
