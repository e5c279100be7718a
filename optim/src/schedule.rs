//! Learning-rate schedules as multipliers of the base learning rate, as
//! `torch.optim.lr_scheduler.LambdaLR` applies them: at step s the optimizer uses
//! η_s = η · lr_factor(s). Feed them with
//! `opt.set_lr_factor(schedule.lr_factor(opt.step_count()))` before each `step`.
//!
//! The formulas are those of Hugging Face transformers'
//! `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup`.

/// A learning-rate multiplier as a function of the step (0-based).
pub trait LrSchedule {
    fn lr_factor(&self, step: u64) -> f64;
}

/// lr_factor(s) = 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConstantSchedule;

impl LrSchedule for ConstantSchedule {
    fn lr_factor(&self, _step: u64) -> f64 {
        1.0
    }
}

/// Linear warmup from 0 to 1 over `warmup` steps, then linear decay to 0 at `total`:
///
///   s < warmup:  s / max(1, warmup)
///   otherwise:   max(0, (total − s) / max(1, total − warmup))
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearWarmup {
    pub warmup: u64,
    pub total: u64,
}

impl LrSchedule for LinearWarmup {
    fn lr_factor(&self, step: u64) -> f64 {
        if step < self.warmup {
            return step as f64 / self.warmup.max(1) as f64;
        }
        let left = self.total as f64 - step as f64;
        (left / self.total.saturating_sub(self.warmup).max(1) as f64).max(0.0)
    }
}

/// Linear warmup, then a cosine from 1 down to 0 at `total` (with `num_cycles` = 0.5):
///
///   s < warmup:  s / max(1, warmup)
///   otherwise:   p = (s − warmup) / max(1, total − warmup)
///                max(0, 0.5·(1 + cos(π · num_cycles · 2 · p)))
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineWarmup {
    pub warmup: u64,
    pub total: u64,
    /// Number of cosine periods over the decay (transformers' convention): 0.5 goes
    /// once from 1 down to 0.
    pub num_cycles: f64,
}

impl CosineWarmup {
    /// transformers' default, `num_cycles` = 0.5.
    pub fn new(warmup: u64, total: u64) -> Self {
        CosineWarmup { warmup, total, num_cycles: 0.5 }
    }
}

impl LrSchedule for CosineWarmup {
    fn lr_factor(&self, step: u64) -> f64 {
        if step < self.warmup {
            return step as f64 / self.warmup.max(1) as f64;
        }
        let progress = (step - self.warmup) as f64 / self.total.saturating_sub(self.warmup).max(1) as f64;
        (0.5 * (1.0 + (std::f64::consts::PI * self.num_cycles * 2.0 * progress).cos())).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_warmup_matches_transformers() {
        let s = LinearWarmup { warmup: 10, total: 100 };
        assert_eq!(s.lr_factor(0), 0.0);
        assert_eq!(s.lr_factor(5), 0.5);
        assert_eq!(s.lr_factor(10), 1.0);
        assert_eq!(s.lr_factor(55), 0.5);
        assert_eq!(s.lr_factor(100), 0.0);
        assert_eq!(s.lr_factor(150), 0.0);
        // No warmup: max(1, 0) keeps it finite.
        assert_eq!(LinearWarmup { warmup: 0, total: 4 }.lr_factor(0), 1.0);
    }

    #[test]
    fn cosine_warmup_matches_transformers() {
        let s = CosineWarmup::new(10, 110);
        assert_eq!(s.lr_factor(5), 0.5);
        assert_eq!(s.lr_factor(10), 1.0);
        assert!((s.lr_factor(60) - 0.5).abs() < 1e-15);
        assert!(s.lr_factor(110).abs() < 1e-15);
        assert_eq!(ConstantSchedule.lr_factor(7), 1.0);
    }
}
