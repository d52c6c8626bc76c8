//! The HF → GGUF conversion pipeline: read the checkpoint's files, check every weight against
//! the shapes config.json implies, build the metadata, then stream tensors one chunk at a time
//! into `<output>.tmp` (with an optional progress bar on stderr) and rename it into place, so a
//! failed conversion never leaves a half-written file behind.
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use glimpse_gguf::{decode_into, GgmlType, GgufWriter, Metadata, TensorPlan};

use crate::checkpoint::Checkpoint;
use crate::glimpse_metadata::add_glimpse_metadata;
use crate::model_metadata::{
    add_general_metadata, add_sampling_metadata, add_text_model_metadata, add_vision_metadata,
    FileRole,
};
use crate::out_type::OutType;
use crate::quantize::encode_into;
use crate::safetensors_dir::{SafetensorsDir, SourceTensor};
use crate::tensor_map::{
    is_vision_tensor, plan_tensors, unused_checkpoint_tensors, Extraction, TensorMapping, LM_HEAD,
};

/// Output bytes converted per write; bounds the memory a conversion needs beyond the mmaps.
const CHUNK_BYTES: usize = 8 << 20;

#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// The Hugging Face checkpoint directory.
    pub input_dir: PathBuf,
    /// The GGUF file to create (replaced if it exists).
    pub output: PathBuf,
    /// Write llama.cpp's two-file layout: the vision tower goes to this `mmproj` file and
    /// `output` holds the text model only.
    pub mmproj_output: Option<PathBuf>,
    pub out_type: OutType,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertSummary {
    pub output: PathBuf,
    pub out_type: OutType,
    pub tensor_count: usize,
    pub parameter_count: u64,
    /// Size of the written file (both files for a pair).
    pub file_bytes: u64,
    /// Whether `output.weight` was left out because lm_head is tied to the embedding.
    pub tied_embeddings: bool,
}

/// One GGUF file to write: its metadata and the tensors (with their sources) it holds.
struct OutputFile<'a, 'w> {
    path: &'a Path,
    metadata: Metadata,
    tensors: Vec<(&'a TensorMapping, &'a SourceTensor<'w>, TensorPlan)>,
}

/// Converts the Qwen3-VL checkpoint in `opts.input_dir` into one GGUF file at `opts.output`,
/// or into llama.cpp's text + mmproj pair when `opts.mmproj_output` is set.
pub fn convert(opts: &ConvertOptions) -> Result<ConvertSummary> {
    let checkpoint = Checkpoint::load(&opts.input_dir)?;
    let weights = SafetensorsDir::open(&opts.input_dir)?;
    let mappings = plan_tensors(&checkpoint.config)?;
    let sources = check_sources(&checkpoint, &weights, &mappings)?;

    let mut model_metadata = Metadata::new();
    add_general_metadata(
        &mut model_metadata,
        &checkpoint,
        opts.out_type,
        FileRole::Model,
    )?;
    add_text_model_metadata(&mut model_metadata, &checkpoint)?;
    add_sampling_metadata(&mut model_metadata, &checkpoint)?;
    // The pair's projector file has its own `general.*` keys; the single file holds it all.
    let vision_metadata = match opts.mmproj_output {
        None => {
            add_vision_metadata(&mut model_metadata, &checkpoint)?;
            Metadata::new()
        }
        Some(_) => {
            let mut projector = Metadata::new();
            add_general_metadata(
                &mut projector,
                &checkpoint,
                opts.out_type,
                FileRole::Projector,
            )?;
            add_vision_metadata(&mut projector, &checkpoint)?;
            projector
        }
    };
    checkpoint.tokenizer.add_metadata(
        &mut model_metadata,
        &checkpoint.config_json.value,
        checkpoint.config.text_config.vocab_size,
    )?;
    add_glimpse_metadata(&mut model_metadata, &checkpoint)?;

    let tensors: Vec<_> = mappings
        .iter()
        .zip(&sources)
        .map(|(mapping, source)| {
            let shape = mapping.gguf_shape();
            let dtype = opts.out_type.tensor_type(&mapping.gguf_name, &shape);
            let plan = TensorPlan {
                name: mapping.gguf_name.clone(),
                shape,
                dtype,
            };
            (mapping, source, plan)
        })
        .collect();
    let parameter_count = tensors
        .iter()
        .map(|(_, _, p)| p.shape.iter().product::<usize>() as u64)
        .sum();
    let tensor_count = tensors.len();
    let files = match &opts.mmproj_output {
        None => vec![OutputFile {
            path: &opts.output,
            metadata: model_metadata,
            tensors,
        }],
        Some(mmproj) => {
            let (vision, text) = tensors
                .into_iter()
                .partition(|(m, _, _)| is_vision_tensor(&m.gguf_name));
            vec![
                OutputFile {
                    path: &opts.output,
                    metadata: model_metadata,
                    tensors: text,
                },
                OutputFile {
                    path: mmproj,
                    metadata: vision_metadata,
                    tensors: vision,
                },
            ]
        }
    };

    let data_bytes = files
        .iter()
        .flat_map(|f| &f.tensors)
        .map(|(_, _, p)| p.byte_size())
        .sum::<Result<usize, _>>()?;
    let progress = progress_bar(opts.progress, data_bytes as u64)?;
    let partials = files
        .iter()
        .map(|file| write_file(file, tensor_count, &progress))
        .collect::<Result<Vec<_>>>()?;
    let mut file_bytes = 0;
    for (partial, bytes) in partials {
        partial.commit()?;
        file_bytes += bytes;
    }
    progress.finish_and_clear();

    Ok(ConvertSummary {
        output: opts.output.clone(),
        out_type: opts.out_type,
        tensor_count,
        parameter_count,
        file_bytes,
        tied_embeddings: checkpoint.config.tie_word_embeddings(),
    })
}

/// Writes one file to its partial path; the caller commits every file once all are written.
fn write_file(
    file: &OutputFile<'_, '_>,
    tensor_count: usize,
    progress: &ProgressBar,
) -> Result<(PartialFile, u64)> {
    let plans = file.tensors.iter().map(|(_, _, p)| p.clone()).collect();
    let (partial, handle) = PartialFile::create(file.path)?;
    let mut writer = GgufWriter::new(BufWriter::new(handle), &file.metadata, plans)?;
    for (index, (mapping, source, plan)) in file.tensors.iter().enumerate() {
        progress.set_message(format!("[{}/{tensor_count}] {}", index + 1, plan.name));
        write_tensor(&mut writer, mapping, source, plan.dtype, progress)
            .with_context(|| format!("writing tensor '{}'", plan.name))?;
    }
    let file_bytes = writer.position();
    let handle = writer
        .finish()?
        .into_inner()
        .map_err(|e| e.into_error())
        .context("flushing the GGUF file")?;
    handle.sync_all().context("syncing the GGUF file")?;
    Ok((partial, file_bytes))
}

/// The checkpoint tensor of every mapping, each with the shape config.json implies; fails on
/// missing tensors and on checkpoint tensors nothing maps.
fn check_sources<'w>(
    checkpoint: &Checkpoint,
    weights: &'w SafetensorsDir,
    mappings: &[TensorMapping],
) -> Result<Vec<SourceTensor<'w>>> {
    let unused = unused_checkpoint_tensors(mappings, &weights.names());
    if let Some(first) = unused.first() {
        bail!(
            "checkpoint tensor '{first}' (and {} more) is not part of a Qwen3-VL model as config.json describes it",
            unused.len() - 1
        );
    }
    mappings
        .iter()
        .map(|mapping| {
            let source = weights.tensor(&mapping.hf_name).with_context(|| {
                if mapping.hf_name == LM_HEAD {
                    "config.json says tie_word_embeddings is false, so lm_head.weight is needed"
                        .to_string()
                } else {
                    format!("needed for GGUF tensor '{}'", mapping.gguf_name)
                }
            })?;
            if source.shape != mapping.hf_shape.as_slice() {
                bail!(
                    "tensor '{}' has shape {:?} in the checkpoint, expected {:?} from '{}'",
                    mapping.hf_name,
                    source.shape,
                    mapping.hf_shape,
                    checkpoint.dir.join("config.json").display()
                );
            }
            Ok(source)
        })
        .collect()
}

/// Element offset in the checkpoint tensor of output row `row` (rows of `row_len` elements).
fn source_row_start(mapping: &TensorMapping, row: usize, row_len: usize) -> usize {
    match mapping.extraction {
        Extraction::Whole | Extraction::ExpertColumns { .. } => row * row_len,
        Extraction::TemporalSlice { t } => {
            // [out, in, kt, p, p] → [out, in, p, p]: row = (out·in)·p + y
            let temporal = mapping.hf_shape.get(2).copied().unwrap_or(1);
            let (plane, y) = (row / row_len, row % row_len);
            ((plane * temporal + t) * row_len + y) * row_len
        }
    }
}

fn write_tensor<W: std::io::Write>(
    writer: &mut GgufWriter<W>,
    mapping: &TensorMapping,
    source: &SourceTensor<'_>,
    target: GgmlType,
    progress: &ProgressBar,
) -> Result<()> {
    let shape = mapping.gguf_shape();
    let row_len = shape.last().copied().unwrap_or(1);
    let rows: usize = shape.iter().rev().skip(1).product();
    let element_size = source.dtype.element_size();
    let rows_per_chunk = (CHUNK_BYTES / (row_len.max(1) * 4)).max(1);
    let mut values = Vec::with_capacity(rows_per_chunk.min(rows) * row_len);
    let mut encoded = Vec::new();

    writer.begin_tensor(&mapping.gguf_name)?;
    if let Extraction::ExpertColumns { first, count } = mapping.extraction {
        write_expert_columns(writer, mapping, source, target, (first, count), progress)?;
        return Ok(writer.end_tensor()?);
    }
    for first_row in (0..rows).step_by(rows_per_chunk) {
        values.clear();
        encoded.clear();
        for row in first_row..rows.min(first_row + rows_per_chunk) {
            let start = source_row_start(mapping, row, row_len) * element_size;
            let bytes = source
                .data
                .get(start..start + row_len * element_size)
                .with_context(|| format!("row {row} of '{}' lies outside its data", source.name))?;
            decode_into(source.dtype.ggml_type(), bytes, &mut values)?;
        }
        encode_into(target, &values, &mut encoded)?;
        writer.write_data(&encoded)?;
        progress.inc(encoded.len() as u64);
    }
    Ok(writer.end_tensor()?)
}

/// The rows of an `ExpertColumns` tensor: each expert's `[in, cols]` matrix is decoded once,
/// then its columns `first..first + count` are written as rows.
fn write_expert_columns<W: std::io::Write>(
    writer: &mut GgufWriter<W>,
    mapping: &TensorMapping,
    source: &SourceTensor<'_>,
    target: GgmlType,
    (first, count): (usize, usize),
    progress: &ProgressBar,
) -> Result<()> {
    let (experts, inputs, cols) = (
        mapping.hf_shape[0],
        mapping.hf_shape[1],
        mapping.hf_shape[2],
    );
    let expert_bytes = inputs * cols * source.dtype.element_size();
    let (mut matrix, mut rows, mut encoded) = (Vec::new(), Vec::new(), Vec::new());
    for expert in 0..experts {
        let bytes = source
            .data
            .get(expert * expert_bytes..(expert + 1) * expert_bytes)
            .with_context(|| {
                format!("expert {expert} of '{}' lies outside its data", source.name)
            })?;
        matrix.clear();
        decode_into(source.dtype.ggml_type(), bytes, &mut matrix)?;
        rows.clear();
        for column in first..first + count {
            rows.extend((0..inputs).map(|i| matrix[i * cols + column]));
        }
        encoded.clear();
        encode_into(target, &rows, &mut encoded)?;
        writer.write_data(&encoded)?;
        progress.inc(encoded.len() as u64);
    }
    Ok(())
}

fn progress_bar(visible: bool, total_bytes: u64) -> Result<ProgressBar> {
    if !visible {
        return Ok(ProgressBar::hidden());
    }
    let style = ProgressStyle::with_template(
        "{msg:48!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .context("progress bar template")?
    .progress_chars("=> ");
    Ok(ProgressBar::new(total_bytes).with_style(style))
}

/// `<output>.tmp`, deleted on drop unless committed (renamed to `<output>`).
struct PartialFile {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PartialFile {
    fn create(target: &Path) -> Result<(PartialFile, File)> {
        let mut temp = target.as_os_str().to_owned();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        let file = File::create(&temp)
            .with_context(|| format!("failed to create '{}'", temp.display()))?;
        Ok((
            PartialFile {
                temp,
                target: target.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.temp, &self.target).with_context(|| {
            format!(
                "failed to rename '{}' to '{}'",
                self.temp.display(),
                self.target.display()
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_slice_rows_index_the_conv3d_layout() {
        let mapping = TensorMapping {
            gguf_name: "v.patch_embd.weight.1".into(),
            hf_name: "model.visual.patch_embed.proj.weight".into(),
            hf_shape: vec![2, 3, 2, 4, 4],
            extraction: Extraction::TemporalSlice { t: 1 },
        };
        // output row 0 = (out 0, in 0, y 0) of frame 1 → element 16 of the source
        assert_eq!(source_row_start(&mapping, 0, 4), 16);
        // output row 5 = plane 1 (out 0, in 1), y 1 → ((1·2 + 1)·4 + 1)·4
        assert_eq!(source_row_start(&mapping, 5, 4), 52);
    }

    #[test]
    fn the_progress_bar_template_parses() {
        assert!(progress_bar(true, 1 << 20).is_ok());
    }

    #[test]
    fn an_uncommitted_partial_file_is_removed() {
        let dir = crate::test_dir::TestDir::new("partial");
        let target = dir.path().join("out.gguf");
        let (partial, file) = PartialFile::create(&target).unwrap();
        drop(file);
        assert!(dir.path().join("out.gguf.tmp").exists());
        drop(partial);
        assert!(!dir.path().join("out.gguf.tmp").exists());
        assert!(!target.exists());
    }
}
