//! Login throttling per client address: a fixed one-minute window with a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Entries kept at most; beyond this, windows that have ended are dropped, then the oldest.
const MAX_CLIENTS: usize = 10_000;

pub struct LoginThrottle {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl LoginThrottle {
    pub fn new(per_minute: u32) -> Self {
        LoginThrottle { per_minute, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts an attempt at `now` (ms); Err(seconds to wait) when over the limit.
    pub fn check(&self, ip: IpAddr, now: i64) -> Result<(), u64> {
        let minute = now.div_euclid(60_000);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() >= MAX_CLIENTS && !w.contains_key(&ip) {
            w.retain(|_, (m, _)| *m == minute);
            if w.len() >= MAX_CLIENTS
                && let Some(k) = w.keys().next().copied()
            {
                w.remove(&k);
            }
        }
        let e = w.entry(ip).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        if e.1 >= self.per_minute {
            let wait = (minute + 1) * 60_000 - now;
            return Err((wait / 1000).max(1) as u64);
        }
        e.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_per_minute() {
        let t = LoginThrottle::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let now = 120_000;
        for _ in 0..3 {
            assert!(t.check(a, now).is_ok());
        }
        assert_eq!(t.check(a, now + 30_000), Err(30));
        assert!(t.check(b, now).is_ok());
        assert!(t.check(a, now + 60_000).is_ok(), "a new minute starts afresh");
    }

    #[test]
    fn table_stays_bounded() {
        let t = LoginThrottle::new(1);
        for i in 0..(MAX_CLIENTS as u32 + 50) {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = t.check(ip, 0);
        }
        assert!(t.windows.lock().unwrap().len() <= MAX_CLIENTS);
    }
}
