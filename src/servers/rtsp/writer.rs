//! The writing half of an RTSP connection, as a task with a bounded queue:
//! responses from the connection and interleaved media from its session go
//! out in the order they were queued. A client that stops reading stalls
//! only its own writer, which gives up after [`WRITE_STALL`].

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::end::End;

/// A write blocked this long means the client is not reading.
pub const WRITE_STALL: Duration = Duration::from_secs(5);
/// Messages (responses, or one access unit's packets) queued per connection.
const QUEUE: usize = 16;

/// Bytes to write, and who wants to know when they are out.
#[derive(Debug)]
pub struct Outgoing {
    data: Bytes,
    written: Option<oneshot::Sender<()>>,
}

impl Outgoing {
    /// Bytes to write.
    pub fn data(data: Bytes) -> Self {
        Self {
            data,
            written: None,
        }
    }

    /// Bytes to write; `written` fires once they are.
    pub fn signalled(data: Bytes, written: oneshot::Sender<()>) -> Self {
        Self {
            data,
            written: Some(written),
        }
    }
}

/// Queues bytes for a connection's writer. Clone it to share the writer.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Outgoing>,
    failure: Arc<Mutex<Option<End>>>,
}

impl WriterHandle {
    /// Queues `out`, waiting while the queue is full; fails with why the
    /// writer ended if it has.
    pub async fn send(&self, out: Outgoing) -> Result<(), End> {
        self.tx.send(out).await.map_err(|_| self.failure())
    }

    /// Why the writer ended (the client closed the connection, unless a
    /// write failed).
    pub fn failure(&self) -> End {
        self.failure
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(End::ClientClosed("the client closed the connection"))
    }
}

/// Starts the writer of `half`. It ends when every handle is dropped (after
/// writing what was queued) or when a write fails, which its handles then
/// report.
pub fn spawn<W>(half: W) -> (WriterHandle, JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    let failure = Arc::new(Mutex::new(None));
    let task = tokio::spawn(write_all(half, rx, Arc::clone(&failure)));
    (WriterHandle { tx, failure }, task)
}

async fn write_all<W: AsyncWrite + Unpin>(
    mut half: W,
    mut rx: mpsc::Receiver<Outgoing>,
    failure: Arc<Mutex<Option<End>>>,
) {
    while let Some(out) = rx.recv().await {
        let end = match tokio::time::timeout(WRITE_STALL, half.write_all(&out.data)).await {
            Ok(Ok(())) => {
                if let Some(w) = out.written {
                    let _ = w.send(());
                }
                continue;
            }
            Ok(Err(e)) => io_end(&e),
            Err(_) => End::Lagging(format!(
                "client is not reading: a write was blocked for {WRITE_STALL:?}"
            )),
        };
        *failure.lock().unwrap() = Some(end);
        return;
    }
    let _ = half.shutdown().await;
}

/// How an I/O error on a client's connection ends its session.
pub fn io_end(e: &io::Error) -> End {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => End::ClientReset,
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionAborted => {
            End::ClientClosed("the client closed the connection")
        }
        _ => End::Error(format!("network error: {e}")),
    }
}
