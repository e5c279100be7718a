//! Where a step's time goes, per op: `TAPEGRAD_PROFILE=1` (or [`enable`]) makes this
//! thread count, for each op name, how often it ran and how long its forward and
//! its backward took; [`report`] formats the table.
//!
//! Ops call no hook when they start, only [`Tensor::from_op`](crate::Tensor::from_op)
//! when they end, so an op's forward is measured as the time since the previous
//! op ended on this thread. That charges any glue between ops (a reshape's
//! bookkeeping, the model's own code) to the next op, which is what a reader wants
//! from "where does the forward go". A backward is timed around its closure.
//! When profiling is off each hook is one thread-local flag test.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct OpTimes {
    pub forward_calls: u64,
    pub forward: Duration,
    pub backward_calls: u64,
    pub backward: Duration,
}

thread_local! {
    static ENABLED: Cell<bool> = Cell::new(std::env::var_os("TAPEGRAD_PROFILE").is_some_and(|v| v != "0"));
    static LAST_MARK: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Set while a backward closure runs: the ops it calls belong to its time.
    static IN_BACKWARD: Cell<bool> = const { Cell::new(false) };
    static TABLE: RefCell<HashMap<&'static str, OpTimes>> = RefCell::new(HashMap::new());
}

/// Turns per-op timing on or off for this thread.
pub fn enable(on: bool) {
    ENABLED.with(|e| e.set(on));
    LAST_MARK.with(|m| m.set(None));
}

pub fn is_enabled() -> bool {
    ENABLED.with(|e| e.get())
}

/// Starts a new measuring window: forgets the counts and marks "now" as the end
/// of the previous op (call it just before the step to profile).
pub fn reset() {
    TABLE.with(|t| t.borrow_mut().clear());
    if is_enabled() {
        LAST_MARK.with(|m| m.set(Some(Instant::now())));
    }
}

/// Hook for the end of an op's forward.
pub(crate) fn forward_done(name: &'static str) {
    if !is_enabled() || IN_BACKWARD.with(|b| b.get()) {
        return;
    }
    let now = Instant::now();
    let since = LAST_MARK.with(|m| m.replace(Some(now))).map_or(Duration::ZERO, |t| now - t);
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let e = t.entry(name).or_default();
        e.forward_calls += 1;
        e.forward += since;
    });
}

/// Runs one op's backward closure, timing it when profiling is on.
pub(crate) fn time_backward(name: &'static str, f: impl FnOnce()) {
    if !is_enabled() {
        return f();
    }
    let t0 = Instant::now();
    IN_BACKWARD.with(|b| b.set(true));
    f();
    IN_BACKWARD.with(|b| b.set(false));
    let took = t0.elapsed();
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let e = t.entry(name).or_default();
        e.backward_calls += 1;
        e.backward += took;
    });
    LAST_MARK.with(|m| m.set(Some(Instant::now())));
}

/// The counts since the last [`reset`], sorted by total time, largest first.
pub fn snapshot() -> Vec<(&'static str, OpTimes)> {
    let mut rows: Vec<_> = TABLE.with(|t| t.borrow().iter().map(|(k, v)| (*k, *v)).collect());
    rows.sort_by(|a, b| (b.1.forward + b.1.backward).cmp(&(a.1.forward + a.1.backward)).then(a.0.cmp(b.0)));
    rows
}

/// The counts as a table: op, calls, forward ms, backward ms, share of the total.
pub fn report() -> String {
    let rows = snapshot();
    let total: f64 = rows.iter().map(|(_, t)| (t.forward + t.backward).as_secs_f64()).sum();
    let mut out =
        format!("{:<22} {:>7} {:>11} {:>12} {:>7}\n", "op", "calls", "forward ms", "backward ms", "share");
    for (name, t) in rows {
        let both = (t.forward + t.backward).as_secs_f64();
        out += &format!(
            "{:<22} {:>7} {:>11.1} {:>12.1} {:>6.1}%\n",
            name,
            t.forward_calls.max(t.backward_calls),
            t.forward.as_secs_f64() * 1e3,
            t.backward.as_secs_f64() * 1e3,
            if total > 0.0 { 100.0 * both / total } else { 0.0 }
        );
    }
    out += &format!("{:<22} {:>7} {:>24.1}\n", "total", "", total * 1e3);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn counts_forward_and_backward_per_op() {
        enable(true);
        reset();
        let w = Tensor::<f64>::param(vec![1.0, 2.0, 3.0], &[3]);
        let loss = w.mul(&w).sum();
        loss.backward();
        let rows = snapshot();
        enable(false);
        let get = |n: &str| rows.iter().find(|(k, _)| *k == n).map(|(_, t)| *t).unwrap();
        assert_eq!(get("mul").forward_calls, 1);
        assert_eq!(get("mul").backward_calls, 1);
        assert_eq!(get("sum_to").forward_calls, 1); // sum() is sum_to([])
        assert_eq!(get("sum_to").backward_calls, 1);
        assert!(report().contains("mul"));
        // off: nothing is counted
        reset();
        let _ = w.mul(&w);
        assert!(snapshot().is_empty());
    }
}
