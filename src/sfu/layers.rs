//! Which simulcast layer a viewer receives: a pure policy over the viewer's bandwidth estimate
//! and the rates the presenter's layers actually arrive at.
//!
//! The rules (`../shared/research/webrtc.md` §6.5): audio first — its share is set aside before
//! any video is chosen; a new viewer starts on the lowest layer; going up needs the next layer
//! to fit with headroom for a steady while, and not sooner than a dwell time after the last
//! change; going down happens at the first estimate that no longer carries the current layer;
//! when not even the lowest layer fits, video pauses and audio goes on alone.

use std::time::{Duration, Instant};

/// The knobs of the policy (`media.*` settings).
#[derive(Clone, Debug)]
pub struct Policy {
    /// Bits per second set aside for audio before video is chosen.
    pub audio_reserve_bps: u64,
    /// How much more than a layer's rate the estimate must leave before going up to it.
    pub headroom: f64,
    /// How long that headroom must hold before going up.
    pub up_after: Duration,
    /// The shortest time between two changes upwards.
    pub min_dwell: Duration,
    /// Video pauses when what is left after audio falls under this share of the lowest layer's
    /// rate (the estimate dips briefly after every congestion signal; pausing at the first dip
    /// would flap), and resumes when the lowest layer fits whole for `up_after`.
    pub pause_below: f64,
    /// A layer the viewer had to leave because its link could not carry it is not tried again
    /// for this long, twice as long after each further failure, at most `retry_max`: a thin
    /// link must not swing between layers (each swing costs a burst of loss).
    pub retry_after: Duration,
    pub retry_max: Duration,
    /// A paused viewer gets the lowest layer again, on trial, after this long (twice as long
    /// after each trial that ends in a pause again soon, at most `retry_max`): the estimate of
    /// a link that loses packets at random collapses once only audio flows (its loss-based
    /// part reads the loss as congestion, and audio alone cannot show it wrong), and would
    /// hold a viewer that can watch in sound only for good.
    pub resume_trial_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            audio_reserve_bps: 64_000,
            headroom: 1.25,
            up_after: Duration::from_secs(3),
            min_dwell: Duration::from_secs(2),
            pause_below: 0.5,
            retry_after: Duration::from_secs(30),
            retry_max: Duration::from_secs(300),
            resume_trial_after: Duration::from_secs(10),
        }
    }
}

/// One viewer's choice: the layer it should get (`None`: video paused) and the history the
/// policy needs.
#[derive(Clone, Debug)]
pub struct Choice {
    current: Option<usize>,
    fits_since: Option<Instant>,
    changed_at: Instant,
    /// Per layer: when the link last failed it, and how long to wait before trying it again.
    failed: Vec<Option<(Instant, Duration)>>,
    /// While paused: since when, and how long until the lowest layer is tried again.
    paused: Option<(Instant, Duration)>,
    /// When the last trial out of a pause started.
    trial_at: Option<Instant>,
}

impl Choice {
    /// A new viewer starts on the lowest layer.
    pub fn new(now: Instant) -> Self {
        Choice {
            current: Some(0),
            fits_since: None,
            changed_at: now,
            failed: vec![],
            paused: None,
            trial_at: None,
        }
    }

    /// The viewer has been paused long enough for a trial of the lowest layer (the caller
    /// starts the estimate afresh with it: `start_trial`).
    pub fn trial_due(&self, now: Instant) -> bool {
        self.current.is_none()
            && self.paused.is_some_and(|(at, wait)| now.duration_since(at) >= wait)
    }

    /// Back to the lowest layer, on trial.
    pub fn start_trial(&mut self, now: Instant) {
        self.trial_at = Some(now);
        self.fits_since = None;
        self.change(now, Some(0));
    }

    /// The layer this viewer should get: an index into the presenter's layers from lowest to
    /// highest, or `None` when its video is paused.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// Looks at a new estimate. `rates` are the layers' arriving rates in bits per second,
    /// lowest first. Returns the new choice when it changed.
    pub fn update(
        &mut self,
        policy: &Policy,
        now: Instant,
        estimate_bps: u64,
        rates: &[u64],
    ) -> Option<Option<usize>> {
        if rates.is_empty() {
            return None;
        }
        let budget = estimate_bps.saturating_sub(policy.audio_reserve_bps);
        let lowest_holds = budget as f64 >= rates[0] as f64 * policy.pause_below;
        // Down at once: the current layer no longer fits (or has gone away); below the lowest
        // layer, video pauses.
        if let Some(c) = self.current {
            let gone = c >= rates.len();
            if gone || (c > 0 && rates[c] > budget) || (c == 0 && !lowest_holds) {
                self.fits_since = None;
                // The lowest layer is the floor: out of a pause it comes back as soon as it fits.
                if !gone && c > 0 {
                    self.failed_now(policy, now, c);
                }
                let to = rates.iter().rposition(|&r| r <= budget);
                let to = to.or(lowest_holds.then_some(0));
                if to.is_none() {
                    self.pause(policy, now);
                }
                return self.change(now, to);
            }
        }
        // Up one step after the next layer has fitted, with headroom, for a while (out of a
        // pause the lowest layer needs to fit, no more).
        let next = self.current.map_or(0, |c| c + 1);
        let Some(&next_rate) = rates.get(next) else {
            self.fits_since = None;
            return None;
        };
        if let Some(Some((at, wait))) = self.failed.get(next) {
            if now.duration_since(*at) < *wait {
                self.fits_since = None;
                return None;
            }
        }
        let headroom = if self.current.is_none() { 1.0 } else { policy.headroom };
        if (next_rate as f64) * headroom <= budget as f64 {
            let since = *self.fits_since.get_or_insert(now);
            if now.duration_since(since) >= policy.up_after
                && now.duration_since(self.changed_at) >= policy.min_dwell
            {
                self.fits_since = None;
                return self.change(now, Some(next));
            }
        } else {
            self.fits_since = None;
        }
        None
    }

    /// Video pauses: the next trial of the lowest layer comes after `resume_trial_after`, or
    /// twice the last wait when a trial has just failed.
    fn pause(&mut self, policy: &Policy, now: Instant) {
        let base = policy.resume_trial_after;
        let failed_trial = self.trial_at.is_some_and(|t| now.duration_since(t) < base);
        let wait = match self.paused {
            Some((_, w)) if failed_trial => (w * 2).min(policy.retry_max),
            _ => base,
        };
        self.paused = Some((now, wait));
    }

    fn failed_now(&mut self, policy: &Policy, now: Instant, layer: usize) {
        if self.failed.len() <= layer {
            self.failed.resize(layer + 1, None);
        }
        let wait = match self.failed[layer] {
            Some((_, w)) => (w * 2).min(policy.retry_max),
            None => policy.retry_after,
        };
        self.failed[layer] = Some((now, wait));
    }

    fn change(&mut self, now: Instant, to: Option<usize>) -> Option<Option<usize>> {
        if to == self.current {
            return None;
        }
        self.current = to;
        self.changed_at = now;
        Some(to)
    }
}

/// At most one keyframe request per layer per `gap`: a burst of viewers joining or switching
/// must not make the presenter's encoder send keyframe after keyframe.
#[derive(Clone, Debug)]
pub struct Throttle {
    gap: Duration,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(gap: Duration) -> Self {
        Throttle { gap, last: None }
    }

    /// Whether a request may go now (and if so, counts it).
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.duration_since(t) < self.gap => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// A layer's arriving rate, measured over whole windows of one second.
#[derive(Clone, Debug, Default)]
pub struct RateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    rate_bps: u64,
    /// The last few windows' rates, newest last.
    recent: std::collections::VecDeque<u64>,
}

/// Windows the peak rate looks back over.
const PEAK_WINDOWS: usize = 5;

impl RateMeter {
    pub fn add(&mut self, now: Instant, bytes: usize) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.duration_since(start);
        if elapsed >= Duration::from_secs(1) {
            self.rate_bps = self.bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            if self.recent.len() == PEAK_WINDOWS {
                self.recent.pop_front();
            }
            self.recent.push_back(self.rate_bps);
            self.window_start = Some(now);
            self.bytes = 0;
        }
        self.bytes += bytes as u64;
    }

    /// The last whole window's rate (0 before the first window ends).
    pub fn bps(&self) -> u64 {
        self.rate_bps
    }

    /// The highest rate of the last five windows: what a viewer must be able to carry to take
    /// the layer (an encoder ramping up or resting on a still scene will send more again).
    pub fn peak_bps(&self) -> u64 {
        self.recent.iter().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [u64; 3] = [150_000, 500_000, 1_500_000];

    fn secs(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    #[test]
    fn new_viewers_start_low_and_climb_one_step_after_stable_headroom() {
        let p = Policy::default();
        let t0 = Instant::now();
        let mut c = Choice::new(t0);
        assert_eq!(c.current(), Some(0));
        // Plenty of room, but not for long enough yet.
        assert_eq!(c.update(&p, secs(t0, 0.5), 5_000_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 3.0), 5_000_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 3.6), 5_000_000, &RATES), Some(Some(1)));
        // One step at a time: mid, then high after another stable while.
        assert_eq!(c.update(&p, secs(t0, 4.0), 5_000_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 7.1), 5_000_000, &RATES), Some(Some(2)));
        assert_eq!(c.update(&p, secs(t0, 20.0), 5_000_000, &RATES), None);
    }

    #[test]
    fn a_dip_in_headroom_restarts_the_wait() {
        let p = Policy::default();
        let t0 = Instant::now();
        let mut c = Choice::new(t0);
        c.update(&p, secs(t0, 0.0), 5_000_000, &RATES);
        // 600 kbit/s: mid (500k × 1.25 = 625k + 64k audio) does not fit with headroom.
        c.update(&p, secs(t0, 2.0), 600_000, &RATES);
        assert_eq!(c.update(&p, secs(t0, 3.5), 5_000_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 6.4), 5_000_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 6.6), 5_000_000, &RATES), Some(Some(1)));
    }

    #[test]
    fn down_at_once_and_video_pauses_before_audio_suffers() {
        let p = Policy::default();
        let t0 = Instant::now();
        let mut c = Choice::new(t0);
        for s in 0..20 {
            c.update(&p, secs(t0, s as f64), 5_000_000, &RATES);
        }
        assert_eq!(c.current(), Some(2));
        // The link falls to 300 kbit/s: straight to the low layer, no dwell.
        assert_eq!(c.update(&p, secs(t0, 20.1), 300_000, &RATES), Some(Some(0)));
        // 130 kbit/s leaves 66k after audio, under half the low layer: video pauses.
        assert_eq!(c.update(&p, secs(t0, 20.2), 130_000, &RATES), Some(None));
        // Back up from a pause is an upward step: low first, after the stable while.
        assert_eq!(c.update(&p, secs(t0, 21.0), 400_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 24.1), 400_000, &RATES), Some(Some(0)));
    }

    #[test]
    fn a_paused_viewer_is_tried_on_the_lowest_layer_again_less_often_each_time_it_fails() {
        let p = Policy::default();
        let t0 = Instant::now();
        let mut c = Choice::new(t0);
        assert_eq!(c.update(&p, secs(t0, 1.0), 100_000, &RATES), Some(None));
        assert!(!c.trial_due(secs(t0, 10.9)));
        assert!(c.trial_due(secs(t0, 11.0)), "a trial 10 s after the pause");
        c.start_trial(secs(t0, 11.0));
        assert_eq!(c.current(), Some(0));
        // It fails at once: the next comes after 20 s, then 40 s.
        assert_eq!(c.update(&p, secs(t0, 12.5), 100_000, &RATES), Some(None));
        assert!(!c.trial_due(secs(t0, 32.4)) && c.trial_due(secs(t0, 32.5)));
        c.start_trial(secs(t0, 32.5));
        assert_eq!(c.update(&p, secs(t0, 34.0), 100_000, &RATES), Some(None));
        assert!(!c.trial_due(secs(t0, 73.9)) && c.trial_due(secs(t0, 74.0)));
        // One that holds: a pause long after it waits 10 s again.
        c.start_trial(secs(t0, 74.0));
        for s in 75..200 {
            c.update(&p, secs(t0, s as f64), 400_000, &RATES);
        }
        assert_eq!(c.update(&p, secs(t0, 200.0), 100_000, &RATES), Some(None));
        assert!(c.trial_due(secs(t0, 210.0)));
        // Not while video flows.
        let mut d = Choice::new(t0);
        assert!(!d.trial_due(secs(t0, 100.0)));
        d.start_trial(t0);
        assert_eq!(d.current(), Some(0));
    }

    #[test]
    fn a_layer_the_link_could_not_carry_waits_before_it_is_tried_again() {
        let p = Policy::default();
        let t0 = Instant::now();
        let mut c = Choice::new(t0);
        for s in 0..4 {
            c.update(&p, secs(t0, s as f64), 5_000_000, &RATES);
        }
        assert_eq!(c.current(), Some(1));
        // The middle layer overflows the link: down, and no retry for 30 s however good the
        // estimate looks.
        assert_eq!(c.update(&p, secs(t0, 4.0), 500_000, &RATES), Some(Some(0)));
        for s in 5..34 {
            assert_eq!(c.update(&p, secs(t0, s as f64), 5_000_000, &RATES), None, "at {s} s");
        }
        // Then it fits for the usual while and is tried again.
        assert_eq!(c.update(&p, secs(t0, 34.0), 5_000_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 37.0), 5_000_000, &RATES), Some(Some(1)));
        // A second failure doubles the wait.
        assert_eq!(c.update(&p, secs(t0, 38.0), 500_000, &RATES), Some(Some(0)));
        assert_eq!(c.update(&p, secs(t0, 90.0), 5_000_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 98.0), 5_000_000, &RATES), None);
        assert_eq!(c.update(&p, secs(t0, 101.0), 5_000_000, &RATES), Some(Some(1)));
    }

    #[test]
    fn a_presenter_sending_fewer_layers_is_followed() {
        let p = Policy::default();
        let t0 = Instant::now();
        let mut c = Choice::new(t0);
        for s in 0..20 {
            c.update(&p, secs(t0, s as f64), 5_000_000, &RATES);
        }
        // The presenter's top layer stops (a small window): the viewer falls to what exists.
        assert_eq!(c.update(&p, secs(t0, 20.0), 5_000_000, &RATES[..2]), Some(Some(1)));
        assert_eq!(c.update(&p, secs(t0, 40.0), 5_000_000, &[]), None);
    }

    #[test]
    fn keyframe_requests_are_throttled() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_millis(500));
        assert!(t.allow(t0));
        assert!(!t.allow(secs(t0, 0.2)));
        assert!(!t.allow(secs(t0, 0.49)));
        assert!(t.allow(secs(t0, 0.5)));
    }

    #[test]
    fn rates_are_measured_over_whole_seconds() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        for i in 0..=100 {
            // 1,000 bytes every 10 ms = 800 kbit/s.
            m.add(t0 + Duration::from_millis(i * 10), 1000);
        }
        assert_eq!(m.bps(), 800_000);
        // A quieter second: the rate follows, the peak remembers.
        for i in 1..=100 {
            m.add(t0 + Duration::from_millis(1000 + i * 10), 500);
        }
        assert!((390_000..=410_000).contains(&m.bps()), "{}", m.bps());
        assert_eq!(m.peak_bps(), 800_000);
    }
}
