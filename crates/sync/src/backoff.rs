//! One retry schedule for every request a device repeats after a network failure: the sync
//! exchange and the photo uploads (issue 11). The schedule only says how long to wait and which
//! attempt comes next; the driver does the waiting and checks its cancel flag while it waits.

use std::time::Duration;

/// Exponential backoff: `first`, then doubling (at most 2⁶ × `first`), never more than `cap`,
/// for at most `retries` retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry.
    pub first: Duration,
    /// No wait is longer than this.
    pub cap: Duration,
    /// How many retries follow a first failure before giving up.
    pub retries: u32,
}

/// One wait of a schedule: before retry `attempt` of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub attempt: u32,
    pub of: u32,
    pub wait: Duration,
}

impl Backoff {
    /// A schedule without a cap on single waits.
    pub fn uncapped(first: Duration, retries: u32) -> Backoff {
        Backoff {
            first,
            cap: Duration::MAX,
            retries,
        }
    }

    /// What to do after the `failures`-th failure in a row (1 for the first): wait and retry,
    /// or give up (`None`).
    pub fn after(&self, failures: u32) -> Option<Wait> {
        if failures == 0 || failures > self.retries {
            return None;
        }
        let wait = self
            .first
            .saturating_mul(1 << (failures - 1).min(6))
            .min(self.cap);
        Some(Wait {
            attempt: failures,
            of: self.retries,
            wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue11_backoff_doubles_caps_and_gives_up() {
        let b = Backoff {
            first: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            retries: 9,
        };
        let waits: Vec<u64> = (1..=9)
            .map(|n| b.after(n).unwrap().wait.as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(b.after(10), None);
        assert_eq!(b.after(0), None);
        let w = b.after(3).unwrap();
        assert_eq!((w.attempt, w.of), (3, 9));
        let u = Backoff::uncapped(Duration::from_secs(1), 8);
        assert_eq!(u.after(8).unwrap().wait, Duration::from_secs(64));
    }
}
