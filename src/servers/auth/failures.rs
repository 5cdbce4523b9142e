//! Failed attempts per client address, bounded in memory whatever the
//! number of addresses: an address that keeps failing is made to wait,
//! and is logged once a window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed attempts are counted over this window.
pub(super) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Failed attempts an address may make in [`FAILURE_WINDOW`] before it is
/// made to wait.
pub(super) const FREE_FAILURES: u32 = 5;
/// Longest an address is made to wait after failing.
pub(super) const MAX_BLOCK: Duration = Duration::from_secs(60);
/// Most client addresses whose failures are remembered.
pub(super) const MAX_TRACKED_ADDRESSES: usize = 4096;
/// Failed attempts per client address (an IPv6 client by its /64, which
/// one host can fill at will).
#[derive(Default)]
pub(super) struct Failures(HashMap<IpAddr, FailureState>);

struct FailureState {
    /// Failures since `since`.
    count: u32,
    since: Instant,
    last: Instant,
    blocked_until: Option<Instant>,
    logged: Option<Instant>,
}

impl Failures {
    fn key(client: IpAddr) -> IpAddr {
        match client.to_canonical() {
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
            v4 => v4,
        }
    }

    /// How long `client` must still wait, if it is blocked.
    pub(super) fn blocked(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.0.get(&Self::key(client))?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns the failures in the window and whether to
    /// log this one (once per address per window).
    pub(super) fn record(&mut self, client: IpAddr, now: Instant) -> (u32, bool) {
        let key = Self::key(client);
        if !self.0.contains_key(&key) && self.0.len() >= MAX_TRACKED_ADDRESSES {
            self.evict(now);
        }
        let s = self.0.entry(key).or_insert(FailureState {
            count: 0,
            since: now,
            last: now,
            blocked_until: None,
            logged: None,
        });
        if now.saturating_duration_since(s.since) > FAILURE_WINDOW {
            s.count = 0;
            s.since = now;
        }
        s.count += 1;
        s.last = now;
        if s.count > FREE_FAILURES {
            let doublings = (s.count - FREE_FAILURES - 1).min(6);
            s.blocked_until = Some(now + Duration::from_secs(1 << doublings).min(MAX_BLOCK));
        }
        let log = s
            .logged
            .is_none_or(|t| now.saturating_duration_since(t) >= FAILURE_WINDOW);
        if log {
            s.logged = Some(now);
        }
        (s.count, log)
    }

    /// A successful login wipes the address's count and wait. When its last
    /// failure was logged is kept, so that a viewer logging in between an
    /// attacker's guesses from the same address (one NAT) does not let them
    /// write more than one line a minute.
    pub(super) fn forget(&mut self, client: IpAddr, now: Instant) {
        let key = Self::key(client);
        let Some(s) = self.0.get_mut(&key) else {
            return;
        };
        if s.logged
            .is_some_and(|t| now.saturating_duration_since(t) < FAILURE_WINDOW)
        {
            s.count = 0;
            s.since = now;
            s.blocked_until = None;
        } else {
            self.0.remove(&key);
        }
    }

    /// Makes room: drops what has expired, else the address that failed
    /// longest ago.
    fn evict(&mut self, now: Instant) {
        self.0.retain(|_, s| {
            now.saturating_duration_since(s.last) <= FAILURE_WINDOW
                || s.blocked_until.is_some_and(|t| t > now)
        });
        if self.0.len() >= MAX_TRACKED_ADDRESSES
            && let Some(oldest) = self.0.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k)
        {
            self.0.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_logged_once_a_window_even_with_successes_between() {
        let mut f = Failures::default();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(f.record(client, t0), (1, true));
        f.forget(client, t0 + Duration::from_secs(1));
        assert_eq!(
            f.record(client, t0 + Duration::from_secs(2)),
            (1, false),
            "counted afresh, not logged again"
        );
        assert!(f.blocked(client, t0 + Duration::from_secs(2)).is_none());
        let later = t0 + FAILURE_WINDOW + Duration::from_secs(3);
        f.forget(client, later);
        assert!(f.0.is_empty(), "nothing kept once the window is over");
        assert_eq!(f.record(client, later), (1, true));
    }

    #[test]
    fn failure_memory_is_bounded_and_ipv6_counts_by_prefix() {
        let mut f = Failures::default();
        let now = Instant::now();
        for i in 0..MAX_TRACKED_ADDRESSES as u32 + 100 {
            f.record(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()), now);
        }
        assert!(f.0.len() <= MAX_TRACKED_ADDRESSES);
        let mut f = Failures::default();
        for host in 1..=FREE_FAILURES + 1 {
            f.record(format!("2001:db8::{host}").parse().unwrap(), now);
        }
        assert!(f.blocked("2001:db8::99".parse().unwrap(), now).is_some());
        assert!(f.blocked("2001:db8:0:1::1".parse().unwrap(), now).is_none());
    }
}
