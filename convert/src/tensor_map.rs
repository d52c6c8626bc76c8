//! Which checkpoint tensor becomes which GGUF tensor: llama.cpp's Qwen3-VL names for the text
//! model (`token_embd`, `blk.N.*`, `output_norm`, `output`) and vision tower (`v.*`, `mm.*`,
//! `v.deepstack.IDX.*`), each with the checkpoint shape the config implies, in file order.
//! A mixture-of-experts layer's router is `ffn_gate_inp`, and its experts' packed tensors
//! (`experts.gate_up_proj` [E, hidden, 2·ff], `experts.down_proj` [E, ff, hidden]) become
//! llama.cpp's `ffn_gate_exps` / `ffn_up_exps` [E, ff, hidden] and `ffn_down_exps`
//! [E, hidden, ff]: one output row per expert feature, as every other matrix.
use anyhow::{bail, Result};

use crate::hf_config::HfConfig;

const TEXT: &str = "model.language_model";
const VISION: &str = "model.visual";
pub const LM_HEAD: &str = "lm_head.weight";

/// Whether a GGUF tensor belongs to the vision tower (`v.*` encoder, `mm.*` merger) — the
/// part llama.cpp keeps in its separate `mmproj` file.
pub fn is_vision_tensor(gguf_name: &str) -> bool {
    gguf_name.starts_with("v.") || gguf_name.starts_with("mm.")
}

/// How the GGUF tensor is cut from its checkpoint tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extraction {
    /// The whole tensor, unchanged.
    Whole,
    /// One temporal frame `t` of the Conv3d patch embedding `[out, in, kt, p, p]`,
    /// giving `[out, in, p, p]`.
    TemporalSlice { t: usize },
    /// Columns `first..first + count` of each expert's `[in, cols]` matrix in `[E, in, cols]`,
    /// transposed: `[E, count, in]`.
    ExpertColumns { first: usize, count: usize },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMapping {
    pub gguf_name: String,
    pub hf_name: String,
    /// The shape the checkpoint tensor must have (PyTorch order).
    pub hf_shape: Vec<usize>,
    pub extraction: Extraction,
}

impl TensorMapping {
    fn whole(gguf_name: String, hf_name: String, hf_shape: &[usize]) -> TensorMapping {
        TensorMapping {
            gguf_name,
            hf_name,
            hf_shape: hf_shape.to_vec(),
            extraction: Extraction::Whole,
        }
    }

    /// Shape of the GGUF tensor (PyTorch order).
    pub fn gguf_shape(&self) -> Vec<usize> {
        match self.extraction {
            Extraction::Whole => self.hf_shape.clone(),
            Extraction::TemporalSlice { .. } => {
                let mut shape = self.hf_shape.clone();
                shape.remove(2);
                shape
            }
            Extraction::ExpertColumns { count, .. } => {
                vec![self.hf_shape[0], count, self.hf_shape[1]]
            }
        }
    }
}

/// Every tensor of the GGUF file, text model first, then the vision tower.
pub fn plan_tensors(config: &HfConfig) -> Result<Vec<TensorMapping>> {
    let mut plan = text_tensors(config)?;
    plan.extend(vision_tensors(config)?);
    Ok(plan)
}

fn text_tensors(config: &HfConfig) -> Result<Vec<TensorMapping>> {
    let text = &config.text_config;
    let (hidden, ff, vocab) = (text.hidden_size, text.intermediate_size, text.vocab_size);
    let head_dim = config.text_head_dim();
    let q_width = text.num_attention_heads * head_dim;
    let kv_width = text.num_key_value_heads * head_dim;

    let mut plan = vec![TensorMapping::whole(
        "token_embd.weight".into(),
        format!("{TEXT}.embed_tokens.weight"),
        &[vocab, hidden],
    )];
    let experts = config.experts()?;
    for layer in 0..text.num_hidden_layers {
        let layer_tensors: [(&str, &str, &[usize]); 8] = [
            ("attn_norm", "input_layernorm", &[hidden]),
            ("attn_q", "self_attn.q_proj", &[q_width, hidden]),
            ("attn_k", "self_attn.k_proj", &[kv_width, hidden]),
            ("attn_v", "self_attn.v_proj", &[kv_width, hidden]),
            ("attn_output", "self_attn.o_proj", &[hidden, q_width]),
            ("attn_q_norm", "self_attn.q_norm", &[head_dim]),
            ("attn_k_norm", "self_attn.k_norm", &[head_dim]),
            ("ffn_norm", "post_attention_layernorm", &[hidden]),
        ];
        let dense: [(&str, &str, &[usize]); 3] = [
            ("ffn_gate", "mlp.gate_proj", &[ff, hidden]),
            ("ffn_up", "mlp.up_proj", &[ff, hidden]),
            ("ffn_down", "mlp.down_proj", &[hidden, ff]),
        ];
        let router = experts.map(|e| ("ffn_gate_inp", "mlp.gate", [e.count, hidden]));
        let router = router.as_ref().map(|(g, h, s)| (*g, *h, &s[..]));
        let feed_forward = if router.is_some() {
            &[][..]
        } else {
            &dense[..]
        };
        for (gguf, hf, shape) in layer_tensors
            .iter()
            .chain(feed_forward)
            .chain(router.iter())
        {
            plan.push(TensorMapping::whole(
                format!("blk.{layer}.{gguf}.weight"),
                format!("{TEXT}.layers.{layer}.{hf}.weight"),
                shape,
            ));
        }
        if let Some(e) = experts {
            let packed = format!("{TEXT}.layers.{layer}.mlp.experts");
            let (n, ff) = (e.count, e.feed_forward);
            let expert_tensors = [
                ("ffn_gate_exps", "gate_up_proj", [n, hidden, 2 * ff], 0, ff),
                ("ffn_up_exps", "gate_up_proj", [n, hidden, 2 * ff], ff, ff),
                ("ffn_down_exps", "down_proj", [n, ff, hidden], 0, hidden),
            ];
            for (gguf, hf, shape, first, count) in expert_tensors {
                plan.push(TensorMapping {
                    gguf_name: format!("blk.{layer}.{gguf}.weight"),
                    hf_name: format!("{packed}.{hf}"),
                    hf_shape: shape.to_vec(),
                    extraction: Extraction::ExpertColumns { first, count },
                });
            }
        }
    }
    plan.push(TensorMapping::whole(
        "output_norm.weight".into(),
        format!("{TEXT}.norm.weight"),
        &[hidden],
    ));
    if !config.tie_word_embeddings() {
        plan.push(TensorMapping::whole(
            "output.weight".into(),
            LM_HEAD.into(),
            &[vocab, hidden],
        ));
    }
    Ok(plan)
}

fn vision_tensors(config: &HfConfig) -> Result<Vec<TensorMapping>> {
    let vision = &config.vision_config;
    if vision.temporal_patch_size != 2 {
        bail!(
            "vision_config.temporal_patch_size is {}; the GGUF layout (v.patch_embd.weight + .weight.1) needs 2",
            vision.temporal_patch_size
        );
    }
    let hidden = vision.hidden_size;
    let ff = vision.intermediate_size;
    let merged = hidden * vision.spatial_merge_size * vision.spatial_merge_size;
    let out = vision.out_hidden_size;
    let patch = vision.patch_size;
    let conv_shape = [
        hidden,
        vision.in_channels,
        vision.temporal_patch_size,
        patch,
        patch,
    ];
    let conv_name = format!("{VISION}.patch_embed.proj.weight");

    let mut plan: Vec<TensorMapping> = (0..vision.temporal_patch_size)
        .map(|t| TensorMapping {
            gguf_name: if t == 0 {
                "v.patch_embd.weight".into()
            } else {
                format!("v.patch_embd.weight.{t}")
            },
            hf_name: conv_name.clone(),
            hf_shape: conv_shape.to_vec(),
            extraction: Extraction::TemporalSlice { t },
        })
        .collect();
    plan.push(TensorMapping::whole(
        "v.patch_embd.bias".into(),
        format!("{VISION}.patch_embed.proj.bias"),
        &[hidden],
    ));
    plan.push(TensorMapping::whole(
        "v.position_embd.weight".into(),
        format!("{VISION}.pos_embed.weight"),
        &[vision.num_position_embeddings, hidden],
    ));
    for block in 0..vision.depth {
        let block_tensors: [(&str, &str, &[usize], &[usize]); 6] = [
            ("ln1", "norm1", &[hidden], &[hidden]),
            ("attn_qkv", "attn.qkv", &[3 * hidden, hidden], &[3 * hidden]),
            ("attn_out", "attn.proj", &[hidden, hidden], &[hidden]),
            ("ln2", "norm2", &[hidden], &[hidden]),
            ("ffn_up", "mlp.linear_fc1", &[ff, hidden], &[ff]),
            ("ffn_down", "mlp.linear_fc2", &[hidden, ff], &[hidden]),
        ];
        for (gguf, hf, weight_shape, bias_shape) in block_tensors {
            let gguf = format!("v.blk.{block}.{gguf}");
            let hf = format!("{VISION}.blocks.{block}.{hf}");
            push_linear(&mut plan, &gguf, &hf, weight_shape, bias_shape);
        }
    }
    push_linear(
        &mut plan,
        "v.post_ln",
        &format!("{VISION}.merger.norm"),
        &[hidden],
        &[hidden],
    );
    push_linear(
        &mut plan,
        "mm.0",
        &format!("{VISION}.merger.linear_fc1"),
        &[merged, merged],
        &[merged],
    );
    push_linear(
        &mut plan,
        "mm.2",
        &format!("{VISION}.merger.linear_fc2"),
        &[out, merged],
        &[out],
    );
    for (k, layer) in vision.deepstack_visual_indexes.iter().enumerate() {
        let hf = format!("{VISION}.deepstack_merger_list.{k}");
        let gguf = format!("v.deepstack.{layer}");
        push_linear(
            &mut plan,
            &format!("{gguf}.norm"),
            &format!("{hf}.norm"),
            &[merged],
            &[merged],
        );
        push_linear(
            &mut plan,
            &format!("{gguf}.fc1"),
            &format!("{hf}.linear_fc1"),
            &[merged, merged],
            &[merged],
        );
        push_linear(
            &mut plan,
            &format!("{gguf}.fc2"),
            &format!("{hf}.linear_fc2"),
            &[out, merged],
            &[out],
        );
    }
    Ok(plan)
}

/// A `.weight` + `.bias` pair (linear layers and LayerNorms).
fn push_linear(
    plan: &mut Vec<TensorMapping>,
    gguf: &str,
    hf: &str,
    weight: &[usize],
    bias: &[usize],
) {
    for (suffix, shape) in [("weight", weight), ("bias", bias)] {
        plan.push(TensorMapping::whole(
            format!("{gguf}.{suffix}"),
            format!("{hf}.{suffix}"),
            shape,
        ));
    }
}

/// Checkpoint tensors the plan does not use (a tied `lm_head.weight` is expected and skipped),
/// sorted.
pub fn unused_checkpoint_tensors<'a>(plan: &[TensorMapping], names: &[&'a str]) -> Vec<&'a str> {
    let used: std::collections::HashSet<&str> = plan.iter().map(|m| m.hf_name.as_str()).collect();
    let mut unused: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !used.contains(name) && *name != LM_HEAD)
        .collect();
    unused.sort_unstable();
    unused
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf_config::tests::tiny_config_json;

    fn config(tied: bool) -> HfConfig {
        let mut value = tiny_config_json();
        value["text_config"]["tie_word_embeddings"] = tied.into();
        HfConfig::from_json_str(&value.to_string()).unwrap()
    }

    fn find<'a>(plan: &'a [TensorMapping], gguf: &str) -> &'a TensorMapping {
        plan.iter()
            .find(|m| m.gguf_name == gguf)
            .unwrap_or_else(|| panic!("{gguf} not planned"))
    }

    #[test]
    fn text_tensors_use_llama_cpp_names_and_config_shapes() {
        let plan = plan_tensors(&config(true)).unwrap();
        let q = find(&plan, "blk.1.attn_q.weight");
        assert_eq!(
            q.hf_name,
            "model.language_model.layers.1.self_attn.q_proj.weight"
        );
        assert_eq!(q.hf_shape, [64, 64]);
        assert_eq!(find(&plan, "blk.0.attn_k.weight").hf_shape, [32, 64]);
        assert_eq!(find(&plan, "blk.0.attn_k_norm.weight").hf_shape, [16]);
        assert_eq!(find(&plan, "blk.0.ffn_down.weight").hf_shape, [64, 128]);
        assert_eq!(find(&plan, "token_embd.weight").hf_shape, [151936, 64]);
        assert_eq!(
            plan.iter()
                .filter(|m| m.gguf_name.starts_with("blk."))
                .count(),
            22
        );
    }

    fn moe_config() -> serde_json::Value {
        let mut value = tiny_config_json();
        value["architectures"] = serde_json::json!(["Qwen3VLMoeForConditionalGeneration"]);
        value["model_type"] = "qwen3_vl_moe".into();
        let text = &mut value["text_config"];
        text["num_experts"] = 8.into();
        text["num_experts_per_tok"] = 2.into();
        text["moe_intermediate_size"] = 48.into();
        text["decoder_sparse_step"] = 1.into();
        text["mlp_only_layers"] = serde_json::json!([]);
        value
    }

    #[test]
    fn expert_layers_take_llama_cpp_names_and_transposed_halves() {
        let config = HfConfig::from_json_str(&moe_config().to_string()).unwrap();
        let plan = plan_tensors(&config).unwrap();
        assert!(!plan.iter().any(|m| m.gguf_name == "blk.0.ffn_gate.weight"));
        let router = find(&plan, "blk.1.ffn_gate_inp.weight");
        assert_eq!(
            router.hf_name,
            "model.language_model.layers.1.mlp.gate.weight"
        );
        assert_eq!(router.hf_shape, [8, 64]);
        let gate = find(&plan, "blk.1.ffn_gate_exps.weight");
        let up = find(&plan, "blk.1.ffn_up_exps.weight");
        let down = find(&plan, "blk.1.ffn_down_exps.weight");
        assert_eq!(
            gate.hf_name,
            "model.language_model.layers.1.mlp.experts.gate_up_proj"
        );
        assert_eq!(up.hf_name, gate.hf_name);
        assert_eq!(gate.hf_shape, [8, 64, 96]);
        assert_eq!(
            gate.extraction,
            Extraction::ExpertColumns {
                first: 0,
                count: 48
            }
        );
        assert_eq!(
            up.extraction,
            Extraction::ExpertColumns {
                first: 48,
                count: 48
            }
        );
        assert_eq!(
            (gate.gguf_shape(), up.gguf_shape()),
            (vec![8, 48, 64], vec![8, 48, 64])
        );
        assert_eq!(down.hf_shape, [8, 48, 64]);
        assert_eq!(down.gguf_shape(), [8, 64, 48]);
        assert!(unused_checkpoint_tensors(&plan, &[&gate.hf_name, &down.hf_name]).is_empty());
    }

    #[test]
    fn dense_layers_among_experts_are_refused() {
        for (field, value) in [
            ("decoder_sparse_step", serde_json::json!(2)),
            ("mlp_only_layers", serde_json::json!([0])),
            ("num_experts_per_tok", serde_json::json!(9)),
        ] {
            let mut config = moe_config();
            config["text_config"][field] = value;
            assert!(
                HfConfig::from_json_str(&config.to_string()).is_err(),
                "{field}"
            );
        }
        let mut missing = moe_config();
        missing["text_config"]
            .as_object_mut()
            .unwrap()
            .remove("moe_intermediate_size");
        let err = HfConfig::from_json_str(&missing.to_string()).unwrap_err();
        assert!(
            format!("{err:#}").contains("moe_intermediate_size"),
            "{err:#}"
        );
    }

    #[test]
    fn output_is_planned_only_when_untied() {
        let tied = plan_tensors(&config(true)).unwrap();
        assert!(!tied.iter().any(|m| m.gguf_name == "output.weight"));
        let untied = plan_tensors(&config(false)).unwrap();
        assert_eq!(find(&untied, "output.weight").hf_name, LM_HEAD);
    }

    #[test]
    fn patch_embedding_is_split_into_two_temporal_slices() {
        let plan = plan_tensors(&config(true)).unwrap();
        let first = find(&plan, "v.patch_embd.weight");
        let second = find(&plan, "v.patch_embd.weight.1");
        assert_eq!(first.hf_shape, [32, 3, 2, 16, 16]);
        assert_eq!(first.gguf_shape(), [32, 3, 16, 16]);
        assert_eq!(first.extraction, Extraction::TemporalSlice { t: 0 });
        assert_eq!(second.extraction, Extraction::TemporalSlice { t: 1 });
    }

    #[test]
    fn deepstack_mergers_are_named_by_absolute_vision_layer() {
        let plan = plan_tensors(&config(true)).unwrap();
        let fc1 = find(&plan, "v.deepstack.2.fc1.weight");
        assert_eq!(
            fc1.hf_name,
            "model.visual.deepstack_merger_list.1.linear_fc1.weight"
        );
        assert_eq!(fc1.hf_shape, [128, 128]);
        assert_eq!(find(&plan, "v.deepstack.0.norm.bias").hf_shape, [128]);
        assert_eq!(find(&plan, "mm.2.weight").hf_shape, [64, 128]);
        assert_eq!(find(&plan, "v.post_ln.weight").hf_shape, [32]);
        assert_eq!(find(&plan, "v.blk.2.attn_qkv.bias").hf_shape, [96]);
        assert!(!plan
            .iter()
            .any(|m| m.gguf_name.starts_with("v.deepstack.1.")));
    }

    #[test]
    fn unused_tensors_are_reported_except_a_tied_lm_head() {
        let plan = plan_tensors(&config(true)).unwrap();
        let names = [
            "model.language_model.norm.weight",
            "lm_head.weight",
            "model.extra.weight",
        ];
        assert_eq!(
            unused_checkpoint_tensors(&plan, &names),
            ["model.extra.weight"]
        );
    }
}
