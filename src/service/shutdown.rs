//! The daemon's stop signal: a flag in a watch channel that every task
//! holds a receiver of, set once when the daemon stops.

use tokio::sync::watch;

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
