//! The event service's subscriptions, in memory: few ([`MAX_SUBSCRIPTIONS`]),
//! each with its queue of notices and its end, and the states they report
//! (the signal is lost, or not; motion, with `[motion]`). What the service answers with them is
//! `events`'; the waiting of a PullMessages is the HTTP side's, on
//! [`Subscriptions::wait`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::soap::{Fault, Version};
use crate::broadcast::StreamInfo;
use crate::motion;

/// Most subscriptions at once: recorders and Home Assistant take one each.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// The longest a PullMessages waits for a message.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most messages kept for a subscription that is not pulled: the oldest
/// go first.
const MAX_QUEUED: usize = 64;
/// A subscription not pulled or renewed for this long is idle: when the
/// camera has all it keeps, the longest idle one makes room for a new
/// one (clients pull at least every [`MAX_WAIT`]).
const IDLE: Duration = Duration::from_secs(120);

/// A property the event service reports, as one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `tns1:VideoSource/SignalLoss`: the pipeline has failed.
    SignalLoss,
    /// `tns1:VideoSource/MotionAlarm`: motion (`[motion]`).
    MotionAlarm,
    /// `tns1:RuleEngine/CellMotionDetector/Motion`: the same motion, as
    /// the cell motion detector's rule says it.
    CellMotion,
}

impl Topic {
    /// Its place in `State::states`.
    fn index(self) -> usize {
        self as usize
    }
}

/// One notification: a topic's state, as it was at `utc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Notice {
    pub topic: Topic,
    /// `State` (or `IsMotion`).
    pub state: bool,
    /// Unix time of the state.
    pub utc: u64,
    /// `Initialized` (the state as it is) rather than `Changed`.
    pub initial: bool,
}

#[derive(Debug)]
struct Subscription {
    expires: Instant,
    /// What a PullMessages extends the life to (a relative life, or the
    /// default when none was named); `None` for an absolute one.
    keep_alive: Option<Duration>,
    /// The topics its filter lets through (of those offered).
    wants: Vec<Topic>,
    queue: VecDeque<Notice>,
    /// Counts PullMessages: a newer one ends the wait of an older one, so
    /// a subscription holds at most one waiting connection.
    pulls: u64,
    /// When it was last created, pulled or renewed.
    used: Instant,
}

#[derive(Debug, Default)]
struct State {
    subscriptions: HashMap<u64, Subscription>,
    /// Each topic's state now, by `Topic::index`.
    states: [bool; 3],
}

/// The subscriptions and the states they report.
#[derive(Debug)]
pub struct Subscriptions {
    /// The topics offered: motion's only with `[motion]`.
    offered: Vec<Topic>,
    state: Mutex<State>,
    /// Bumped at every change a waiting PullMessages may want.
    changed: watch::Sender<u64>,
}

/// A PullMessages that found nothing to return: the HTTP side waits on
/// it ([`Subscriptions::wait`]) and then asks again (`Onvif::pulled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub(super) id: u64,
    pull: u64,
    pub(super) limit: usize,
    /// When to answer, with nothing if nothing came.
    pub until: Instant,
    /// The request's SOAP version, which the answer keeps.
    pub version: Version,
}

/// What a PullMessages gets: notices and the subscription's end, or a
/// wait.
pub(super) enum Pulled {
    Now(Vec<Notice>, Instant),
    Wait(Wait),
}

impl Subscriptions {
    /// Subscriptions to the topics `offered`.
    pub fn new(offered: Vec<Topic>) -> Self {
        Self {
            offered,
            state: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }

    /// The topics offered.
    pub fn offered(&self) -> &[Topic] {
        &self.offered
    }
}

fn gone() -> Fault {
    Fault::InvalidArgVal(
        "NoSubscription",
        "no such subscription (it expired or was ended): create another".into(),
    )
}

impl Subscriptions {
    /// `topic`'s state is `on` from Unix time `utc`: a `Changed` notice
    /// to every subscription that wants it.
    pub fn set(&self, topic: Topic, on: bool, utc: u64) {
        let mut state = self.state.lock().unwrap();
        if state.states[topic.index()] == on {
            return;
        }
        state.states[topic.index()] = on;
        let notice = Notice {
            topic,
            state: on,
            utc,
            initial: false,
        };
        for s in state.subscriptions.values_mut() {
            if s.wants.contains(&topic) {
                queue(s, notice);
            }
        }
        drop(state);
        self.bump();
    }

    /// Follows motion's events (`[motion]`) until they end: both motion
    /// topics at once.
    pub async fn follow_motion(&self, mut events: tokio::sync::broadcast::Receiver<motion::Event>) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let (on, at) = match events.recv().await {
                Ok(motion::Event::Start { at, .. }) => (true, at),
                Ok(motion::Event::End { at, .. }) => (false, at),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            // The capture time on the wall clock.
            let ago = Instant::now().saturating_duration_since(at).as_secs();
            let utc = unix_now().saturating_sub(ago);
            self.set(Topic::MotionAlarm, on, utc);
            self.set(Topic::CellMotion, on, utc);
        }
    }

    /// Follows the main stream's state (`info`: the pipeline's error while
    /// it has failed) until the stream ends.
    pub async fn follow(&self, mut info: watch::Receiver<StreamInfo>) {
        loop {
            let lost = info.borrow_and_update().error.is_some();
            self.set(Topic::SignalLoss, lost, unix_now());
            if info.changed().await.is_err() {
                return;
            }
        }
    }

    /// Subscriptions now (expired ones included until swept).
    #[cfg(test)]
    pub(super) fn count(&self) -> usize {
        self.state.lock().unwrap().subscriptions.len()
    }

    /// Returns when `wait`'s subscription has something to pull, a newer
    /// PullMessages came, it is gone, or `wait.until` has passed.
    pub async fn wait(&self, wait: &Wait) {
        let mut changed = self.changed.subscribe();
        let ready = || {
            let state = self.state.lock().unwrap();
            state
                .subscriptions
                .get(&wait.id)
                .is_none_or(|s| !s.queue.is_empty() || s.pulls != wait.pull)
        };
        let until = tokio::time::Instant::from_std(wait.until);
        while !ready() {
            tokio::select! {
                c = changed.changed() => if c.is_err() { return },
                () = tokio::time::sleep_until(until) => return,
            }
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// A new subscription living `life` (extended by `keep_alive` at each
    /// pull), given the current state of each topic it `wants` (of those
    /// offered) first: its id and end.
    pub(super) fn create(
        &self,
        now: Instant,
        unix: u64,
        life: Duration,
        keep_alive: Option<Duration>,
        wants: impl Fn(Topic) -> bool,
    ) -> Result<(u64, Instant), Fault> {
        let mut state = self.state.lock().unwrap();
        sweep(&mut state, now);
        if state.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            let idle = state
                .subscriptions
                .iter()
                .min_by_key(|(_, s)| s.used)
                .filter(|(_, s)| now.saturating_duration_since(s.used) >= IDLE)
                .map(|(id, _)| *id);
            let Some(idle) = idle else {
                return Err(Fault::MaxPullPoints);
            };
            tracing::info!(
                "ONVIF: event subscription {idle:016x} ended for a new one: the camera keeps \
                 {MAX_SUBSCRIPTIONS}, and it was not pulled for {} s",
                IDLE.as_secs()
            );
            state.subscriptions.remove(&idle);
        }
        let wants: Vec<Topic> = self.offered.iter().copied().filter(|&t| wants(t)).collect();
        let queue = wants
            .iter()
            .map(|&topic| Notice {
                topic,
                state: state.states[topic.index()],
                utc: unix,
                initial: true,
            })
            .collect();
        let id = loop {
            let id = rand::random::<u64>();
            if !state.subscriptions.contains_key(&id) {
                break id;
            }
        };
        let expires = now + life;
        state.subscriptions.insert(
            id,
            Subscription {
                expires,
                keep_alive,
                wants,
                queue,
                pulls: 0,
                used: now,
            },
        );
        Ok((id, expires))
    }

    /// PullMessages on subscription `id`: up to `limit` notices now, or,
    /// with none queued, a wait of `timeout` (at most [`MAX_WAIT`]).
    pub(super) fn pull(
        &self,
        id: u64,
        now: Instant,
        limit: usize,
        timeout: Duration,
        version: Version,
    ) -> Result<Pulled, Fault> {
        let mut state = self.state.lock().unwrap();
        sweep(&mut state, now);
        let s = state.subscriptions.get_mut(&id).ok_or_else(gone)?;
        if let Some(life) = s.keep_alive {
            s.expires = s.expires.max(now + life);
        }
        s.pulls += 1;
        s.used = now;
        if s.queue.is_empty() && !timeout.is_zero() {
            let wait = Wait {
                id,
                pull: s.pulls,
                limit,
                until: now + timeout.min(MAX_WAIT),
                version,
            };
            drop(state);
            // An older pull of this subscription stops waiting.
            self.bump();
            return Ok(Pulled::Wait(wait));
        }
        let n = s.queue.len().min(limit);
        Ok(Pulled::Now(s.queue.drain(..n).collect(), s.expires))
    }

    /// What `wait`'s subscription has once the wait is over.
    pub(super) fn after_wait(&self, wait: &Wait) -> Result<(Vec<Notice>, Instant), Fault> {
        let mut state = self.state.lock().unwrap();
        let s = state.subscriptions.get_mut(&wait.id).ok_or_else(gone)?;
        let n = s.queue.len().min(wait.limit);
        Ok((s.queue.drain(..n).collect(), s.expires))
    }

    /// SetSynchronizationPoint: the current state, `Initialized`, to
    /// subscription `id`.
    pub(super) fn synchronize(&self, id: u64, now: Instant, unix: u64) -> Result<(), Fault> {
        let mut state = self.state.lock().unwrap();
        sweep(&mut state, now);
        let states = state.states;
        let s = state.subscriptions.get_mut(&id).ok_or_else(gone)?;
        for topic in s.wants.clone() {
            queue(
                s,
                Notice {
                    topic,
                    state: states[topic.index()],
                    utc: unix,
                    initial: true,
                },
            );
        }
        drop(state);
        self.bump();
        Ok(())
    }

    /// Renew: subscription `id` lives `life` from `now`; its new end.
    pub(super) fn renew(
        &self,
        id: u64,
        now: Instant,
        life: Duration,
        keep_alive: Option<Duration>,
    ) -> Result<Instant, Fault> {
        let mut state = self.state.lock().unwrap();
        sweep(&mut state, now);
        let s = state.subscriptions.get_mut(&id).ok_or_else(gone)?;
        s.expires = now + life;
        s.keep_alive = keep_alive;
        s.used = now;
        Ok(s.expires)
    }

    /// Unsubscribe: subscription `id` ends now.
    pub(super) fn unsubscribe(&self, id: u64, now: Instant) -> Result<(), Fault> {
        let mut state = self.state.lock().unwrap();
        sweep(&mut state, now);
        state.subscriptions.remove(&id).ok_or_else(gone)?;
        drop(state);
        self.bump();
        Ok(())
    }
}

/// Adds `notice` to `s`'s queue, the oldest going when it is full.
fn queue(s: &mut Subscription, notice: Notice) {
    if s.queue.len() == MAX_QUEUED {
        s.queue.pop_front();
    }
    s.queue.push_back(notice);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Drops the subscriptions whose time is up.
fn sweep(state: &mut State, now: Instant) {
    state.subscriptions.retain(|_, s| s.expires > now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::Broadcast;

    #[tokio::test]
    async fn the_state_follows_the_pipeline_failing_and_running_again() {
        let stream = Broadcast::new();
        let subscriptions = std::sync::Arc::new(Subscriptions::new(vec![Topic::SignalLoss]));
        let following = {
            let subscriptions = std::sync::Arc::clone(&subscriptions);
            let info = stream.watch_info();
            tokio::spawn(async move { subscriptions.follow(info).await })
        };
        let now = Instant::now();
        let (id, _) = subscriptions
            .create(now, 0, Duration::from_secs(60), None, |_| true)
            .unwrap();
        // What a pull gets, once something is there (within 20 s).
        let next = |subscriptions: std::sync::Arc<Subscriptions>| async move {
            let pulled = subscriptions
                .pull(
                    id,
                    Instant::now(),
                    10,
                    Duration::from_secs(20),
                    Version::Soap12,
                )
                .unwrap();
            match pulled {
                Pulled::Now(notices, _) => notices,
                Pulled::Wait(wait) => {
                    subscriptions.wait(&wait).await;
                    subscriptions.after_wait(&wait).unwrap().0
                }
            }
        };
        let first = next(std::sync::Arc::clone(&subscriptions)).await;
        assert_eq!(first.iter().map(|n| n.state).collect::<Vec<_>>(), [false]);
        stream.set_info(StreamInfo {
            description: "pipeline failed (camera gone); retrying".into(),
            error: Some("camera gone".into()),
        });
        let lost = next(std::sync::Arc::clone(&subscriptions)).await;
        assert_eq!(lost.len(), 1);
        assert!(lost[0].state && !lost[0].initial);
        stream.set_info(StreamInfo {
            description: "1280x720@30 h264 from camera".into(),
            error: None,
        });
        let back = next(std::sync::Arc::clone(&subscriptions)).await;
        assert_eq!(back.iter().map(|n| n.state).collect::<Vec<_>>(), [false]);
        following.abort();
    }

    #[tokio::test]
    async fn motion_events_set_both_motion_topics() {
        let all = vec![Topic::SignalLoss, Topic::MotionAlarm, Topic::CellMotion];
        let subscriptions = std::sync::Arc::new(Subscriptions::new(all));
        let (tx, rx) = tokio::sync::broadcast::channel(4);
        let following = {
            let subscriptions = std::sync::Arc::clone(&subscriptions);
            tokio::spawn(async move { subscriptions.follow_motion(rx).await })
        };
        let now = Instant::now();
        let (id, _) = subscriptions
            .create(now, 0, Duration::from_secs(60), None, |t| {
                t != Topic::SignalLoss
            })
            .unwrap();
        let pull = || match subscriptions
            .pull(id, Instant::now(), 10, Duration::ZERO, Version::Soap12)
            .unwrap()
        {
            Pulled::Now(notices, _) => notices,
            Pulled::Wait(_) => panic!("no timeout was asked"),
        };
        let states = |notices: Vec<Notice>| -> Vec<(Topic, bool, bool)> {
            notices
                .iter()
                .map(|n| (n.topic, n.state, n.initial))
                .collect()
        };
        assert_eq!(
            states(pull()),
            [
                (Topic::MotionAlarm, false, true),
                (Topic::CellMotion, false, true)
            ]
        );
        let at = Instant::now();
        tx.send(motion::Event::Start { at, area: 0.05 }).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while seen.len() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            seen.extend(states(pull()));
        }
        assert_eq!(
            seen,
            [
                (Topic::MotionAlarm, true, false),
                (Topic::CellMotion, true, false)
            ]
        );
        tx.send(motion::Event::End {
            at,
            duration: Duration::from_secs(3),
            area: 0.05,
        })
        .unwrap();
        drop(tx);
        following.await.unwrap();
        assert_eq!(
            states(pull()),
            [
                (Topic::MotionAlarm, false, false),
                (Topic::CellMotion, false, false)
            ]
        );
    }
}
