//! The stream's media clock: maps capture instants to 90 kHz RTP timestamps
//! and to NTP wall-clock time, so that RTP time is continuous (never derived
//! from send time) and sender reports tie it to the wall clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::CLOCK_RATE;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// One clock per stream, shared by every client.
#[derive(Debug, Clone, Copy)]
pub struct MediaClock {
    epoch: Instant,
    epoch_wall: SystemTime,
    rtp_base: u32,
    /// RTP ticks a second.
    rate: u32,
}

impl MediaClock {
    /// A clock starting now, at a random RTP timestamp.
    pub fn new() -> Self {
        Self::with_base(Instant::now(), SystemTime::now(), rand::random())
    }

    /// A clock for another stream of the same capture, ticking `rate`
    /// times a second: the same mapping from capture time to wall-clock
    /// time, so both streams' sender reports agree, and its own random RTP
    /// base.
    pub fn sibling(&self, rate: u32) -> Self {
        Self {
            rate,
            ..Self::with_base(self.epoch, self.epoch_wall, rand::random())
        }
    }

    /// A 90 kHz clock whose `epoch` instant is `epoch_wall` and RTP time
    /// `rtp_base`.
    pub fn with_base(epoch: Instant, epoch_wall: SystemTime, rtp_base: u32) -> Self {
        Self {
            epoch,
            epoch_wall,
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

    /// Wall-clock time of instant `t`.
    pub fn wall_time(&self, t: Instant) -> SystemTime {
        if t >= self.epoch {
            self.epoch_wall + (t - self.epoch)
        } else {
            self.epoch_wall - (self.epoch - t)
        }
    }

    /// 64-bit NTP timestamp (32.32 fixed point) of instant `t`.
    pub fn ntp_timestamp(&self, t: Instant) -> u64 {
        let since_unix = self
            .wall_time(t)
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
        let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
        (secs << 32) | frac
    }
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
        let c = MediaClock::with_base(t0, UNIX_EPOCH, u32::MAX - 1000);
        assert_eq!(c.rtp_timestamp(t0), u32::MAX - 1000);
        // One frame at 30 fps is 3000 ticks; this one wraps past zero.
        assert_eq!(
            c.rtp_timestamp(t0 + Duration::from_nanos(33_333_334)),
            (u32::MAX - 1000).wrapping_add(3000)
        );
        assert_eq!(c.rtp_timestamp(t0 + Duration::from_secs(1)), 90_000 - 1001);
        let later = t0 + Duration::from_millis(10);
        let c2 = MediaClock::with_base(later, UNIX_EPOCH, 1000);
        assert_eq!(c2.rtp_timestamp(t0), 100);
    }

    #[test]
    fn ntp_time_maps_wall_clock() {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = MediaClock::with_base(t0, wall, 0);
        let ntp = c.ntp_timestamp(t0 + Duration::from_millis(500));
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn a_sibling_maps_capture_to_the_same_wall_clock() {
        let t0 = Instant::now();
        let main = MediaClock::new();
        let sub = main.sibling(CLOCK_RATE);
        for t in [
            t0,
            t0 + Duration::from_millis(333),
            t0 + Duration::from_secs(3600),
        ] {
            assert_eq!(main.ntp_timestamp(t), sub.ntp_timestamp(t));
            // The same tick count from each base.
            assert_eq!(
                main.rtp_timestamp(t).wrapping_sub(main.rtp_base),
                sub.rtp_timestamp(t).wrapping_sub(sub.rtp_base)
            );
        }
        let audio = main.sibling(48_000);
        assert_eq!(audio.ntp_timestamp(t0), main.ntp_timestamp(t0));
        // From its epoch, one second is 48000 ticks exactly.
        let audio = MediaClock::with_base(t0, UNIX_EPOCH, 0).sibling(48_000);
        let second = t0 + Duration::from_secs(1);
        assert_eq!(
            audio
                .rtp_timestamp(second)
                .wrapping_sub(audio.rtp_timestamp(t0)),
            48_000
        );
    }
}
