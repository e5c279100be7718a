//! Layers and models: the module convention, basic layers, the BiLSTM classifier
//! and the BERT encoder, with safetensors I/O.

pub mod bert;
pub mod bilstm;
pub mod layers;
pub mod lstm;
pub mod module;
pub mod safetensors_io;
pub mod tokenizer;

pub use bilstm::{BiLstmClassifier, BiLstmConfig};
pub use lstm::{Lstm, LstmOutput};
pub use module::Module;
