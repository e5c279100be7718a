//! Layers and models: the module convention, basic layers, the BiLSTM classifier
//! and the BERT encoder, with safetensors I/O.

pub mod layers;
pub mod module;

pub use module::Module;
