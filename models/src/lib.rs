//! Layers and models: the module convention, basic layers, the BiLSTM classifier
//! and the BERT encoder, with safetensors I/O.

pub mod bert;
pub mod layers;
pub mod module;
pub mod safetensors_io;
pub mod tokenizer;

pub use module::Module;
