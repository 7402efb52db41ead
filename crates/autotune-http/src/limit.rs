//! Rate limits (token buckets) and the in-flight limit (a counting semaphore).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A token bucket with reservations: taking more than is available is allowed and leaves
/// the bucket in debt; the taker then waits until the debt would have been refilled.
/// This paces callers first-come first-served and never deadlocks on a cost larger than
/// the capacity.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// Units refilled per second.
    rate: f64,
    /// Most units held (the burst).
    capacity: f64,
    level: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket for `per_minute` units a minute with a burst of `window` seconds'
    /// worth (at least one unit).
    pub fn new(per_minute: f64, window_seconds: f64, now: Instant) -> Bucket {
        let capacity = (per_minute * window_seconds / 60.0).max(1.0);
        Bucket {
            rate: per_minute / 60.0,
            capacity,
            level: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.rate).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// Take `cost` units; returns how long the caller must wait before using them.
    pub fn reserve(&mut self, cost: f64, now: Instant) -> Duration {
        self.refill(now);
        self.level -= cost;
        if self.level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.level / self.rate)
        }
    }

    /// Give back (`delta > 0`) or take more (`delta < 0`) units after the fact.
    pub fn adjust(&mut self, delta: f64, now: Instant) {
        self.refill(now);
        self.level = (self.level + delta).min(self.capacity);
    }
}

/// Request and token buckets of one client.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    requests: Option<Mutex<Bucket>>,
    tokens: Option<Mutex<Bucket>>,
}

impl RateLimiter {
    pub fn new(rpm: Option<f64>, tpm: Option<f64>, window_seconds: f64) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            requests: rpm.map(|r| Mutex::new(Bucket::new(r, window_seconds, now))),
            tokens: tpm.map(|t| Mutex::new(Bucket::new(t, window_seconds, now))),
        }
    }

    /// Reserve one request and `tokens` tokens, sleeping as long as the limits require.
    pub fn acquire(&self, tokens: f64) {
        let now = Instant::now();
        let wait_r = self
            .requests
            .as_ref()
            .map_or(Duration::ZERO, |b| lock(b).reserve(1.0, now));
        let wait_t = self
            .tokens
            .as_ref()
            .map_or(Duration::ZERO, |b| lock(b).reserve(tokens, now));
        let wait = wait_r.max(wait_t);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// Correct a token reservation: `estimated` was reserved, `actual` were used.
    pub fn correct_tokens(&self, estimated: f64, actual: f64) {
        if let Some(b) = &self.tokens {
            lock(b).adjust(estimated - actual, Instant::now());
        }
    }
}

/// A counting semaphore bounding the HTTP requests in flight.
#[derive(Debug)]
pub(crate) struct Semaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

pub(crate) struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    pub fn new(n: usize) -> Semaphore {
        Semaphore {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    pub fn acquire(&self) -> Permit<'_> {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.cv.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn bucket_allows_burst_then_paces() {
        let t0 = Instant::now();
        // 600/min = 10/s, burst of 0.5 s = 5 units.
        let mut b = Bucket::new(600.0, 0.5, t0);
        for _ in 0..5 {
            assert_eq!(b.reserve(1.0, t0), Duration::ZERO);
        }
        let w = b.reserve(1.0, t0);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        let w = b.reserve(1.0, t0);
        assert!((w.as_secs_f64() - 0.2).abs() < 1e-9, "{w:?}");
        // One second later the debt (2) is repaid and 8 units refilled, capped at 5.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..5 {
            assert_eq!(b.reserve(1.0, t1), Duration::ZERO);
        }
        assert!(b.reserve(1.0, t1) > Duration::ZERO);
    }

    #[test]
    fn oversized_cost_waits_instead_of_deadlocking_and_corrections_refund() {
        let t0 = Instant::now();
        let mut b = Bucket::new(60.0, 10.0, t0); // 1/s, capacity 10
        let w = b.reserve(30.0, t0);
        assert!((w.as_secs_f64() - 20.0).abs() < 1e-9);
        b.adjust(25.0, t0); // actual usage was 5
        assert_eq!(b.reserve(5.0, t0), Duration::ZERO);
        b.adjust(1000.0, t0);
        assert!(b.level <= b.capacity);
    }

    #[test]
    fn semaphore_bounds_concurrency() {
        let sem = Semaphore::new(3);
        let inside = AtomicUsize::new(0);
        let max = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    let _p = sem.acquire();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    inside.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let max = max.load(Ordering::SeqCst);
        assert!((2..=3).contains(&max), "max in flight {max}");
    }
}
