//! Peers' implementations of this project's workloads, timed by `benches/peers.sh` beside
//! ours. Not part of the engine: a separate crate with its own lock file, so that the
//! workspace (and CI) never builds candle or burn. The binaries (`src/bin/`) each time one
//! workload on one peer and print lines in the format of the example that times ours.

pub mod trainable_bert;
