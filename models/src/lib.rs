//! Models: filled by the models issue.
