//! systemd's READY/STATUS/WATCHDOG notifications (a no-op when not
//! started by systemd): the STATUS line tells the stream's state and the
//! publishers'.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::broadcast::Broadcast;
use crate::pushers::publish::Publishers;

/// How often STATUS is refreshed when there is no watchdog.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// The STATUS line: what streams, to how many clients, and to how many
/// of the publish targets.
pub fn status_line(stream: &Broadcast, publishers: &Publishers) -> String {
    let info = stream.info();
    let line = match info.error {
        Some(e) => format!("not streaming: {e}"),
        None => {
            let n = stream.clients();
            format!(
                "streaming {}, {n} client{}",
                info.description,
                if n == 1 { "" } else { "s" }
            )
        }
    };
    match publishers.summary() {
        Some(publishing) => format!("{line}; {publishing}"),
        None => line,
    }
}

/// Sends READY=1 once the first access unit exists (or the pipeline has
/// reported a failure), then keeps STATUS current and pets the watchdog only
/// while access units keep coming.
pub async fn run(
    stream: Arc<Broadcast>,
    publishers: Arc<Publishers>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = stream.first_frame() => {}
        _ = wait_for_error(&stream) => {}
        _ = shutdown.wait_for(|s| *s) => return,
    }
    let mut status = status_line(&stream, &publishers);
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    tracing::info!(status = %status, "ready: {status}");
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(STATUS_INTERVAL, |w| (w / 2).min(STATUS_INTERVAL));
    let stall_limit = watchdog
        .unwrap_or(Duration::MAX)
        .max(Duration::from_secs(2));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => {
                notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
                return;
            }
        }
        let now = status_line(&stream, &publishers);
        if now != status {
            status = now;
            notify(&[NotifyState::Status(&status)]);
        }
        let progressing = stream
            .last_frame_at()
            .is_some_and(|t| t.elapsed() < stall_limit);
        if watchdog.is_some() && progressing {
            notify(&[NotifyState::Watchdog]);
        }
    }
}

async fn wait_for_error(stream: &Broadcast) {
    loop {
        if stream.info().error.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
