//! The stream's media clock: maps capture instants to 90 kHz RTP timestamps
//! and to NTP wall-clock time, so that RTP time is continuous (never derived
//! from send time) and sender reports tie it to the wall clock.
//!
//! RTP time counts on the monotonic clock from the stream's start. Wall
//! time is read when it is asked for: a Pi has no real-time clock and
//! boots with a stale time that NTP steps later, often while it streams,
//! and the next sender report then carries the new time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::CLOCK_RATE;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// One clock per stream, shared by every client.
#[derive(Debug, Clone, Copy)]
pub struct MediaClock {
    epoch: Instant,
    rtp_base: u32,
    /// RTP ticks a second.
    rate: u32,
}

impl MediaClock {
    /// A clock starting now, at a random RTP timestamp.
    pub fn new() -> Self {
        Self::with_base(Instant::now(), rand::random())
    }

    /// A clock for another stream of the same capture, ticking `rate`
    /// times a second, with its own random RTP base: its RTP time counts
    /// from the same start, and its wall time is the same system clock, so
    /// both streams' sender reports agree.
    pub fn sibling(&self, rate: u32) -> Self {
        Self {
            rate,
            ..Self::with_base(self.epoch, rand::random())
        }
    }

    /// A 90 kHz clock whose `epoch` instant is RTP time `rtp_base`.
    pub fn with_base(epoch: Instant, rtp_base: u32) -> Self {
        Self {
            epoch,
            rtp_base,
            rate: CLOCK_RATE,
        }
    }

    /// The signed time from the epoch to `t`, in ticks.
    fn ticks(&self, t: Instant) -> i128 {
        let ns: i128 = if t >= self.epoch {
            (t - self.epoch).as_nanos() as i128
        } else {
            -((self.epoch - t).as_nanos() as i128)
        };
        ns * self.rate as i128 / 1_000_000_000
    }

    /// The RTP timestamp of instant `t` (wrapping, as RTP time does).
    pub fn rtp_timestamp(&self, t: Instant) -> u32 {
        self.rtp_base.wrapping_add(self.ticks(t) as u32)
    }

    /// Wall-clock time of instant `t`, by the system's clock now.
    pub fn wall_time(&self, t: Instant) -> SystemTime {
        wall_time_at(t, Instant::now(), SystemTime::now())
    }

    /// 64-bit NTP timestamp (32.32 fixed point) of instant `t`, by the
    /// system's clock now.
    pub fn ntp_timestamp(&self, t: Instant) -> u64 {
        ntp(self.wall_time(t))
    }
}

/// Wall-clock time of instant `t` when instant `now` is wall time `wall`.
fn wall_time_at(t: Instant, now: Instant, wall: SystemTime) -> SystemTime {
    if t <= now {
        wall - (now - t)
    } else {
        wall + (t - now)
    }
}

/// A wall-clock time as a 64-bit NTP timestamp (32.32 fixed point).
fn ntp(wall: SystemTime) -> u64 {
    let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

impl Default for MediaClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_time_follows_capture_time_and_wraps() {
        let t0 = Instant::now();
        let c = MediaClock::with_base(t0, u32::MAX - 1000);
        assert_eq!(c.rtp_timestamp(t0), u32::MAX - 1000);
        // One frame at 30 fps is 3000 ticks; this one wraps past zero.
        assert_eq!(
            c.rtp_timestamp(t0 + Duration::from_nanos(33_333_334)),
            (u32::MAX - 1000).wrapping_add(3000)
        );
        assert_eq!(c.rtp_timestamp(t0 + Duration::from_secs(1)), 90_000 - 1001);
        let later = t0 + Duration::from_millis(10);
        let c2 = MediaClock::with_base(later, 1000);
        assert_eq!(c2.rtp_timestamp(t0), 100);
    }

    #[test]
    fn ntp_time_maps_wall_clock() {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ntp = ntp(wall_time_at(t0 + Duration::from_millis(500), t0, wall));
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
        // A capture 2 s before the clock was read.
        let before = wall_time_at(t0, t0 + Duration::from_secs(2), wall);
        assert_eq!(before, wall - Duration::from_secs(2));
    }

    #[test]
    fn wall_time_follows_the_system_clock_as_it_is_now() {
        // What a step of the system clock does: the same capture instant
        // read against a wall clock that moved on by a year.
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let year = Duration::from_secs(365 * 86_400);
        let now = t0 + Duration::from_secs(10);
        assert_eq!(
            wall_time_at(t0, now, wall + year),
            wall + year - Duration::from_secs(10)
        );
        assert_eq!(
            wall_time_at(t0, now, wall - year),
            wall - year - Duration::from_secs(10)
        );
        // And the clock itself reads the system's.
        let c = MediaClock::new();
        let got = c.wall_time(Instant::now());
        let off = SystemTime::now()
            .duration_since(got)
            .unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_secs(1), "{off:?}");
    }

    #[test]
    fn a_sibling_counts_from_the_same_start() {
        let t0 = Instant::now();
        let main = MediaClock::new();
        let sub = main.sibling(CLOCK_RATE);
        for t in [
            t0,
            t0 + Duration::from_millis(333),
            t0 + Duration::from_secs(3600),
        ] {
            // The same tick count from each base.
            assert_eq!(
                main.rtp_timestamp(t).wrapping_sub(main.rtp_base),
                sub.rtp_timestamp(t).wrapping_sub(sub.rtp_base)
            );
        }
        // From its epoch, one second is 48000 ticks exactly.
        let audio = MediaClock::with_base(t0, 0).sibling(48_000);
        let second = t0 + Duration::from_secs(1);
        assert_eq!(
            audio
                .rtp_timestamp(second)
                .wrapping_sub(audio.rtp_timestamp(t0)),
            48_000
        );
    }
}
