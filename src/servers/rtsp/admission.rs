//! Who gets a connection: nobody can lock the camera out by holding
//! connections open. Connections are capped (by the file descriptors the
//! process may open); at the cap, a newcomer is let in and the oldest
//! connection that carries no session is closed instead, so idle, slow and
//! abandoned connections make room for new clients, while connections that
//! carry a session are never closed for them. Only when every connection
//! carries a session is the newcomer refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::service::log::LogLimit;

/// Most connections whatever the descriptor limit: each costs a few KiB.
pub const MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept for everything but client connections (camera,
/// encoder, UDP sockets, the journal, files).
pub const RESERVED_FDS: usize = 128;
/// How often the log may say that connections are being closed to make room.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The server's open connections.
#[derive(Debug)]
pub struct Admission {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    next: u64,
    /// By the order they came in: the first unprotected one is the oldest.
    open: BTreeMap<u64, Arc<Slot>>,
    evicted: u64,
    log: LogLimit,
    /// Most connections open since memory was last given back.
    peak: usize,
}

#[derive(Debug, Default)]
struct Slot {
    carries_session: AtomicBool,
    evict: Notify,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} connections are open and every one carries a session")]
pub struct Full(pub usize);

/// One admitted connection; dropping it lets it go.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    slot: Arc<Slot>,
    admission: Arc<Admission>,
}

impl Admission {
    /// At most `cap` connections at once (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            inner: Mutex::new(Inner {
                next: 0,
                open: BTreeMap::new(),
                evicted: 0,
                log: LogLimit::new(LOG_EVERY),
                peak: 0,
            }),
        })
    }

    /// The cap for a process that may open `fd_limit` descriptors.
    pub fn cap_for(fd_limit: u64) -> usize {
        let usable = usize::try_from(fd_limit).unwrap_or(usize::MAX);
        usable
            .saturating_sub(RESERVED_FDS)
            .clamp(16, MAX_CONNECTIONS)
    }

    /// Most connections at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.lock().unwrap().open.len()
    }

    /// Lets a new connection in, at the cap by closing the oldest one that
    /// carries no session.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<Ticket, Full> {
        let mut inner = self.inner.lock().unwrap();
        if inner.open.len() >= self.cap {
            let oldest = inner
                .open
                .iter()
                .find(|(_, s)| !s.carries_session.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let Some(id) = oldest else {
                return Err(Full(inner.open.len()));
            };
            if let Some(slot) = inner.open.remove(&id) {
                slot.evict.notify_one();
            }
            inner.evicted += 1;
            if inner.log.allow(now).is_some() {
                tracing::warn!(
                    limit = self.cap,
                    closed = inner.evicted,
                    "{} connections open (the limit): closing the oldest without a session for each new one ({} so far)",
                    self.cap,
                    inner.evicted
                );
            }
        }
        let id = inner.next;
        inner.next += 1;
        let slot = Arc::new(Slot::default());
        inner.open.insert(id, Arc::clone(&slot));
        inner.peak = inner.peak.max(inner.open.len());
        Ok(Ticket {
            id,
            slot,
            admission: Arc::clone(self),
        })
    }
}

impl Ticket {
    /// Marks the connection as carrying a session (or not): one that does
    /// is never closed to make room.
    pub fn set_carries_session(&self, carries: bool) {
        self.slot.carries_session.store(carries, Ordering::Relaxed);
    }

    /// Resolves when the connection must close to make room for a new one.
    pub async fn evicted(&self) {
        self.slot.evict.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.admission.inner.lock().unwrap();
        inner.open.remove(&self.id);
        // After a crowd (an attack, a crowd of viewers) has mostly gone,
        // give the freed heap back to the system.
        if inner.peak >= TRIM_AFTER && inner.open.len() <= inner.peak / 4 {
            inner.peak = inner.open.len();
            release_memory();
        }
    }
}

/// Connections that count as a crowd, whose memory is given back once
/// three quarters of them have gone.
const TRIM_AFTER: usize = 64;

/// Returns freed heap memory to the system (glibc keeps it otherwise).
fn release_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Raises the soft limit on open files to the hard one (systemd starts
/// services at 1024) and returns the limit in force.
// rlim_t is u32 on 32-bit targets (the Pi's armv7), u64 elsewhere.
#[allow(clippy::useless_conversion)]
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return u64::from(raised.rlim_cur);
            }
        }
    }
    u64::from(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_oldest_connection_without_a_session_makes_room() {
        let a = Admission::new(3);
        let now = Instant::now();
        let first = a.admit(now).unwrap();
        first.set_carries_session(true);
        let second = a.admit(now).unwrap();
        let third = a.admit(now).unwrap();
        assert_eq!(a.open(), 3);
        let fourth = a.admit(now).unwrap();
        assert_eq!(a.open(), 3);
        tokio::time::timeout(Duration::from_secs(1), second.evicted())
            .await
            .expect("the oldest without a session is told to close");
        let fifth = a.admit(now).unwrap();
        tokio::time::timeout(Duration::from_secs(1), third.evicted())
            .await
            .expect("then the next oldest");
        drop((second, third));
        assert_eq!(a.open(), 3, "evicted tickets were already let go");
        fourth.set_carries_session(true);
        fifth.set_carries_session(true);
        assert_eq!(a.admit(now).unwrap_err(), Full(3), "all carry sessions");
        drop(first);
        assert_eq!(a.open(), 2);
        assert!(a.admit(now).is_ok());
    }

    #[test]
    fn cap_follows_the_descriptor_limit() {
        assert_eq!(Admission::cap_for(1024), 1024 - RESERVED_FDS);
        assert_eq!(Admission::cap_for(100), 16);
        assert_eq!(Admission::cap_for(1 << 20), MAX_CONNECTIONS);
        assert!(raise_fd_limit() >= 1024);
    }
}
