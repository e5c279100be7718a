//! Tiny-config tests: names, save/load round trip, masking, dropout, errors.
//! (Numerical parity with transformers is `tests/parity_bert.rs` at the root.)

use super::*;
use crate::module::Module;
use crate::safetensors_io::SafeTensorsFile;
use std::path::PathBuf;
use tapegrad_autograd::Tensor;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapegrad-bert-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn batch() -> BertInput {
    // two sequences of 5, the second padded after 3 tokens
    BertInput {
        input_ids: vec![1, 7, 8, 9, 2, 1, 11, 2, 0, 0],
        attention_mask: vec![1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
        token_type_ids: vec![0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
        shape: [2, 5],
    }
}

#[test]
fn parameter_names_are_transformers() {
    let model = BertForSequenceClassification::<f32>::new(&BertConfig::tiny(), 3, 0);
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    let per_layer = 16;
    assert_eq!(names.len(), 5 + 2 * per_layer + 2 + 2);
    for n in [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias",
        "bert.encoder.layer.1.attention.self.query.weight",
        "bert.encoder.layer.1.attention.self.key.bias",
        "bert.encoder.layer.1.attention.self.value.weight",
        "bert.encoder.layer.1.attention.output.dense.weight",
        "bert.encoder.layer.1.attention.output.LayerNorm.bias",
        "bert.encoder.layer.1.intermediate.dense.weight",
        "bert.encoder.layer.1.output.dense.bias",
        "bert.encoder.layer.1.output.LayerNorm.weight",
        "bert.pooler.dense.weight",
        "classifier.weight",
        "classifier.bias",
    ] {
        assert!(names.iter().any(|m| m == n), "missing parameter {n}");
    }
    // transformers' init: the padding row is zero, biases are zero
    let w = model.bert.embeddings.word_embeddings.weight.to_vec();
    assert!(w[..8].iter().all(|&v| v == 0.0) && w[8..16].iter().any(|&v| v != 0.0));
    assert!(model.classifier.bias.as_ref().unwrap().to_vec().iter().all(|&v| v == 0.0));
}

#[test]
fn save_then_load_gives_the_same_logits() {
    let dir = temp_dir("roundtrip");
    let mut model = BertForSequenceClassification::<f32>::new(&BertConfig::tiny(), 3, 7);
    model.set_training(false);
    let before = model.forward(&batch()).unwrap().logits.to_vec();
    model.save_pretrained(&dir).unwrap();

    let file = SafeTensorsFile::open(dir.join("model.safetensors")).unwrap();
    assert_eq!(file.metadata()["format"], "pt");
    assert!(
        file.contains("bert.encoder.layer.0.attention.self.query.weight") && file.contains("classifier.bias")
    );
    let config = BertConfig::from_json(&file.metadata()["config"]).unwrap();
    assert_eq!(config, BertConfig::tiny());

    let mut loaded = BertForSequenceClassification::<f32>::from_pretrained(&dir, 3, 99).unwrap();
    loaded.set_training(false);
    assert!(loaded.bert.encoder.layers[1].output.dense.weight.is_mapped(), "loaded weights are views");
    assert_eq!(loaded.forward(&batch()).unwrap().logits.to_vec(), before, "the saved classifier is used");
    // in f64 too (converted from F32)
    let mut wide = BertForSequenceClassification::<f64>::from_pretrained(&dir, 3, 99).unwrap();
    wide.set_training(false);
    let l64 = wide.forward(&batch()).unwrap().logits.to_vec();
    assert!(l64.iter().zip(&before).all(|(a, b)| (a - *b as f64).abs() < 1e-5));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_model_that_does_not_fit_lists_every_problem() {
    let dir = temp_dir("mismatch");
    BertForSequenceClassification::<f32>::new(&BertConfig::tiny(), 2, 0).save_pretrained(&dir).unwrap();
    let file = SafeTensorsFile::open(dir.join("model.safetensors")).unwrap();
    let other = BertConfig { intermediate_size: 12, num_hidden_layers: 3, ..BertConfig::tiny() };
    let err =
        BertForSequenceClassification::<f32>::new(&other, 2, 0).load_weights(&file).unwrap_err().to_string();
    for m in [
        "model.safetensors",
        "bert.encoder.layer.2.attention.self.query.weight", // missing: a third layer
        "bert.encoder.layer.0.intermediate.dense.weight",   // mis-shaped
        "bert.encoder.layer.1.output.dense.weight",         // mis-shaped
    ] {
        assert!(err.contains(m), "the error must mention {m}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_errors_name_the_file_and_key() {
    let dir = temp_dir("config");
    let path = dir.join("config.json");
    let mut json: serde_json::Value = serde_json::from_str(&BertConfig::tiny().to_json()).unwrap();
    json.as_object_mut().unwrap().remove("num_attention_heads");
    std::fs::write(&path, json.to_string()).unwrap();
    let err = BertConfig::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("`num_attention_heads`"), "{err}");
    json["num_attention_heads"] = 3.into(); // 8 is not a multiple of 3
    std::fs::write(&path, json.to_string()).unwrap();
    let err = BertConfig::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("num_attention_heads"), "{err}");
    json["num_attention_heads"] = 2.into();
    json["hidden_act"] = "swish".into();
    std::fs::write(&path, json.to_string()).unwrap();
    let err = BertConfig::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("swish"), "{err}");
    let err = BertConfig::from_file(dir.join("absent.json")).unwrap_err().to_string();
    assert!(err.contains("absent.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn padded_keys_are_ignored() {
    let mut model = BertForSequenceClassification::<f64>::new(&BertConfig::tiny(), 2, 3);
    model.set_training(false);
    let a = model.forward(&batch()).unwrap();
    let mut x = batch();
    x.input_ids[8] = 33; // change the padded tokens of sequence 2
    x.input_ids[9] = 44;
    let b = model.forward(&x).unwrap();
    let h = 8;
    let (ha, hb) = (a.last_hidden_state.to_vec(), b.last_hidden_state.to_vec());
    // the real tokens of sequence 2 (positions 0..3) do not see the padding
    let real = 5 * h..(5 + 3) * h;
    assert!(ha[real.clone()].iter().zip(&hb[real]).all(|(p, q)| (p - q).abs() < 1e-12));
    assert_eq!(a.logits.to_vec(), b.logits.to_vec());
}

#[test]
fn dropout_only_in_training() {
    let mut model = BertForSequenceClassification::<f32>::new(&BertConfig::tiny(), 2, 5);
    let train =
        (model.forward(&batch()).unwrap().logits.to_vec(), model.forward(&batch()).unwrap().logits.to_vec());
    assert_ne!(train.0, train.1, "dropout draws new masks in training");
    model.set_training(false);
    let eval =
        (model.forward(&batch()).unwrap().logits.to_vec(), model.forward(&batch()).unwrap().logits.to_vec());
    assert_eq!(eval.0, eval.1);
}

#[test]
fn bad_inputs_are_errors() {
    let model = BertForSequenceClassification::<f32>::new(&BertConfig::tiny(), 2, 0);
    let mut x = batch();
    x.input_ids[3] = 50;
    assert!(model.forward(&x).err().unwrap().to_string().contains("token id 50"));
    let long = BertInput {
        input_ids: vec![1; 17],
        attention_mask: vec![1; 17],
        token_type_ids: vec![0; 17],
        shape: [1, 17],
    };
    assert!(model.forward(&long).err().unwrap().to_string().contains("max_position_embeddings"));
    let mut x = batch();
    x.attention_mask.pop();
    assert!(model.forward(&x).is_err());
    let logits = model.forward(&batch()).unwrap().logits;
    assert!(model.loss(&logits, &[0, 2]).is_err());
    let loss = model.loss(&logits, &[0, 1]).unwrap();
    loss.backward();
    assert!(
        model.named_parameters().iter().all(|(_, p)| p.grad().is_some()),
        "every parameter gets a gradient"
    );
}

/// `logits` (the last layer at the first position only) gives the full forward's logits, bit
/// for bit, and every parameter's gradient up to rounding; the last layer's state is the full
/// one's first row.
#[test]
fn logits_at_the_first_position_equal_the_full_forward() {
    let mut model = BertForSequenceClassification::<f64>::new(&BertConfig::tiny(), 2, 7);
    model.set_training(false); // no dropout, so both paths compute the same function
    let close = |what: &str, a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0f64, f64::max);
        assert!(worst <= 1e-12 * scale, "{what}: off by {worst:e} (scale {scale:e})");
    };
    let full = model.forward(&batch()).unwrap();
    let first = model.forward_at(&batch(), Positions::First).unwrap();
    let h = 8;
    assert_eq!(first.last_hidden_state.shape(), &[2, 1, h]);
    let state = full.last_hidden_state.to_vec();
    let state_first: Vec<f64> = (0..2).flat_map(|b| state[b * 5 * h..][..h].to_vec()).collect();
    // the forward values to the bit: each row of a product, a layer norm or GELU is computed
    // the same way whatever the other rows
    assert_eq!(first.last_hidden_state.to_vec(), state_first, "the last layer at position 0");
    assert_eq!(first.pooled.to_vec(), full.pooled.to_vec(), "pooled");
    assert_eq!(model.logits(&batch()).unwrap().to_vec(), full.logits.to_vec(), "logits");

    let grads = |logits: Tensor<f64>| {
        model.loss(&logits, &[1, 0]).unwrap().backward();
        let g: Vec<(String, Vec<f64>)> = model
            .named_parameters()
            .into_iter()
            .map(|(n, p)| (n, p.grad().map(|g| g.to_vec()).unwrap_or_default()))
            .collect();
        model.zero_grad();
        g
    };
    let (g_full, g_first) =
        (grads(model.forward(&batch()).unwrap().logits), grads(model.logits(&batch()).unwrap()));
    for ((name, a), (_, b)) in g_first.iter().zip(&g_full) {
        assert!(!b.is_empty() && b.iter().any(|&v| v != 0.0), "{name} has a gradient");
        close(name, a, b);
    }
}
