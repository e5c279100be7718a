//! Optimizers: filled by the optimizer issue.
