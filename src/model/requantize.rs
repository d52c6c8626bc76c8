//! `glimpse quantize`: rewrites a GGUF file with another weight type, choosing each
//! tensor's type with the same policy as `glimpse convert` and copying all metadata.
//! Sources may be F32, F16, BF16 or Q8_0 (requantizing Q8_0 adds a little error). Weight
//! re-encoding, not format: Q8_0 sources are read with the kernels' own dequantizer.
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{bail, Context, Result};
use glimpse_convert::{encode_into, OutType};

use crate::gguf::{keys, GgmlType, GgufFile, GgufWriter, MetaValue, Metadata, TensorPlan};
use crate::kernels::quant::q8_0;

/// Writes `input` re-encoded as `out_type` to `output` (via `<output>.tmp`, renamed at the end).
pub fn requantize(input: &Path, output: &Path, out_type: OutType) -> Result<()> {
    let file = GgufFile::open(input)?;
    let mut metadata = Metadata::new();
    for (key, value) in file.metadata().iter() {
        let value = if key == keys::general::FILE_TYPE {
            MetaValue::U32(out_type.file_type())
        } else {
            value.clone()
        };
        metadata.insert(key, value)?;
    }
    if !metadata.contains(keys::general::FILE_TYPE) {
        metadata.insert(
            keys::general::FILE_TYPE,
            MetaValue::U32(out_type.file_type()),
        )?;
    }
    let plans: Vec<TensorPlan> = file
        .tensor_infos()
        .iter()
        .map(|t| TensorPlan {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: out_type.tensor_type(&t.name, &t.shape),
        })
        .collect();
    let temporary = output.with_extension("gguf.tmp");
    let result = (|| -> Result<()> {
        let sink = BufWriter::new(
            File::create(&temporary)
                .with_context(|| format!("cannot create '{}'", temporary.display()))?,
        );
        let mut writer = GgufWriter::new(sink, &metadata, plans.clone())?;
        for plan in &plans {
            let view = file.tensor(&plan.name)?;
            let values = match view.dtype {
                GgmlType::Q8_0 => {
                    let cols = view.shape.last().copied().unwrap_or(0);
                    let mut values = vec![0.0f32; view.n_elements()];
                    for (row, out) in view.data.chunks_exact(q8_0::row_bytes(cols)).zip(values.chunks_exact_mut(cols.max(1))) {
                        q8_0::dequantize_row(row, out);
                    }
                    values
                }
                GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => view.to_f32_vec()?,
                other => bail!("tensor '{}' is {other}: requantizing from it is not supported; convert from the checkpoint instead", plan.name),
            };
            let mut bytes = Vec::new();
            encode_into(plan.dtype, &values, &mut bytes)?;
            writer.write_tensor(&plan.name, &bytes)?;
        }
        writer.finish()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::rename(&temporary, output)
        .with_context(|| format!("cannot move the result to '{}'", output.display()))
}
