//! The server's Digest nonces: bounded in number, expiring, each accepting
//! a client's `nc` only upwards.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::hash::to_hex;

/// How long a nonce is good for; a request with an older one is answered
/// `401` with `stale=true`, and the client retries with a fresh one.
pub(super) const NONCE_LIFETIME: Duration = Duration::from_secs(600);
/// Most nonces remembered: the oldest go first.
pub(super) const MAX_NONCES: usize = 1024;
/// The server's nonces: how old each is and the highest `nc` seen with it.
#[derive(Default)]
pub(super) struct Nonces {
    pub(super) live: HashMap<String, NonceState>,
    order: VecDeque<String>,
}

/// How old a nonce is, and the highest `nc` seen with it.
pub(super) struct NonceState {
    issued: Instant,
    highest_nc: u32,
}

impl Nonces {
    /// A new random nonce.
    pub(super) fn issue(&mut self, now: Instant) -> String {
        while self.order.len() >= MAX_NONCES {
            if let Some(old) = self.order.pop_front() {
                self.live.remove(&old);
            }
        }
        let nonce = to_hex(&rand::random::<[u8; 16]>());
        self.live.insert(
            nonce.clone(),
            NonceState {
                issued: now,
                highest_nc: 0,
            },
        );
        self.order.push_back(nonce.clone());
        nonce
    }

    /// True if `nonce` is ours and fresh, and `nc` (with `qop`) is higher
    /// than any seen with it.
    pub(super) fn accept(&mut self, nonce: &str, nc: Option<u32>, now: Instant) -> bool {
        let Some(state) = self.live.get_mut(nonce) else {
            return false;
        };
        if now.saturating_duration_since(state.issued) > NONCE_LIFETIME {
            return false;
        }
        match nc {
            Some(n) if n <= state.highest_nc => false,
            Some(n) => {
                state.highest_nc = n;
                true
            }
            None => true,
        }
    }
}
