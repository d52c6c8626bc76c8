//! The weights of a Hugging Face checkpoint directory: a single `model.safetensors` or the
//! shards listed by `model.safetensors.index.json`, memory-mapped, with every header parsed and
//! validated up front. Tensors are handed out as borrowed byte views; errors name the file.
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use glimpse_gguf::GgmlType;
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors};

use crate::json_file::{parse_json, read_text};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Element types glimpse converts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceDtype {
    F32,
    F16,
    BF16,
}

impl SourceDtype {
    /// The ggml type with the same element encoding.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            SourceDtype::F32 => GgmlType::F32,
            SourceDtype::F16 => GgmlType::F16,
            SourceDtype::BF16 => GgmlType::BF16,
        }
    }

    pub fn element_size(self) -> usize {
        self.ggml_type().type_size()
    }
}

/// One tensor of the checkpoint, borrowed from its memory map.
#[derive(Clone, Copy, Debug)]
pub struct SourceTensor<'a> {
    pub name: &'a str,
    pub dtype: SourceDtype,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

struct Shard {
    path: PathBuf,
    map: Mmap,
}

struct TensorEntry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the shard's memory map.
    start: usize,
    end: usize,
}

pub struct SafetensorsDir {
    shards: Vec<Shard>,
    tensors: HashMap<String, TensorEntry>,
}

impl SafetensorsDir {
    /// Opens `dir/model.safetensors`, or every shard named by `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<SafetensorsDir> {
        let index_path = dir.join(INDEX_FILE);
        let single_path = dir.join(SINGLE_FILE);
        let shard_files = if index_path.exists() {
            shard_files_from_index(&index_path)?
        } else if single_path.exists() {
            vec![SINGLE_FILE.to_string()]
        } else {
            bail!(
                "no weights in '{}': expected {SINGLE_FILE} or {INDEX_FILE}",
                dir.display()
            );
        };
        let mut weights = SafetensorsDir {
            shards: Vec::new(),
            tensors: HashMap::new(),
        };
        for file_name in shard_files {
            weights.add_shard(dir.join(file_name))?;
        }
        if index_path.exists() {
            weights.check_index_entries_exist(&index_path)?;
        }
        Ok(weights)
    }

    fn add_shard(&mut self, path: PathBuf) -> Result<()> {
        let file =
            File::open(&path).with_context(|| format!("failed to open '{}'", path.display()))?;
        // SAFETY: the map is read-only; like every mmap-based loader, glimpse assumes the
        // checkpoint is not modified while it is being converted.
        let map = unsafe { Mmap::map(&file) }
            .with_context(|| format!("failed to map '{}'", path.display()))?;
        let (header_len, header) = SafeTensors::read_metadata(&map)
            .map_err(|e| anyhow!("'{}' is not a valid safetensors file: {e}", path.display()))?;
        let data_start = 8 + header_len;
        let shard = self.shards.len();
        for (name, info) in header.tensors() {
            if self.tensors.contains_key(&name) {
                bail!(
                    "tensor '{name}' appears in more than one shard (again in '{}')",
                    path.display()
                );
            }
            let (start, end) = info.data_offsets;
            let entry = TensorEntry {
                shard,
                dtype: info.dtype,
                shape: info.shape.clone(),
                start: data_start + start,
                end: data_start + end,
            };
            self.tensors.insert(name, entry);
        }
        self.shards.push(Shard { path, map });
        Ok(())
    }

    fn check_index_entries_exist(&self, index_path: &Path) -> Result<()> {
        for (name, file) in index_weight_map(index_path)? {
            if !self.tensors.contains_key(&name) {
                bail!(
                    "tensor '{name}' listed in '{}' is missing from '{file}'",
                    index_path.display()
                );
            }
        }
        Ok(())
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The tensor `name`; errors when absent or stored in a type glimpse does not convert.
    pub fn tensor(&self, name: &str) -> Result<SourceTensor<'_>> {
        let (name, entry) = self
            .tensors
            .get_key_value(name)
            .ok_or_else(|| anyhow!("missing tensor '{name}' in the checkpoint"))?;
        let shard = &self.shards[entry.shard];
        let dtype = match entry.dtype {
            Dtype::F32 => SourceDtype::F32,
            Dtype::F16 => SourceDtype::F16,
            Dtype::BF16 => SourceDtype::BF16,
            other => bail!(
                "tensor '{name}' in '{}' has dtype {other:?}; glimpse converts BF16, F16 and F32",
                shard.path.display()
            ),
        };
        let data = shard.map.get(entry.start..entry.end).ok_or_else(|| {
            anyhow!(
                "tensor '{name}' runs past the end of '{}'",
                shard.path.display()
            )
        })?;
        Ok(SourceTensor {
            name,
            dtype,
            shape: &entry.shape,
            data,
        })
    }
}

/// `weight_map` of an index file: tensor name → shard file name.
fn index_weight_map(index_path: &Path) -> Result<Vec<(String, String)>> {
    let index = parse_json(index_path, &read_text(index_path)?)?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| anyhow!("'{}' has no \"weight_map\" object", index_path.display()))?;
    map.iter()
        .map(|(name, file)| match file.as_str() {
            Some(file) => Ok((name.clone(), file.to_string())),
            None => bail!(
                "'{}': weight_map entry '{name}' is not a file name",
                index_path.display()
            ),
        })
        .collect()
}

/// The distinct shard files named by an index, in sorted order; names must stay inside the
/// checkpoint directory.
fn shard_files_from_index(index_path: &Path) -> Result<Vec<String>> {
    let files: BTreeSet<String> = index_weight_map(index_path)?
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    if files.is_empty() {
        bail!("'{}' lists no tensors", index_path.display());
    }
    if let Some(bad) = files
        .iter()
        .find(|f| f.contains('/') || f.contains('\\') || f.as_str() == "..")
    {
        bail!(
            "'{}' names shard '{bad}' outside the checkpoint directory",
            index_path.display()
        );
    }
    Ok(files.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use safetensors::tensor::TensorView;

    use super::*;
    use crate::test_dir::TestDir;

    fn write_safetensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
        let views: HashMap<String, TensorView> = tensors
            .iter()
            .map(|(name, dtype, shape, data)| {
                (
                    name.to_string(),
                    TensorView::new(*dtype, shape.clone(), data).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    #[test]
    fn single_file_tensors_are_readable() {
        let dir = TestDir::new("st-single");
        write_safetensors(
            &dir.path().join(SINGLE_FILE),
            &[
                ("a", Dtype::BF16, vec![2, 2], vec![1; 8]),
                ("b", Dtype::F32, vec![1], vec![2; 4]),
            ],
        );
        let weights = SafetensorsDir::open(dir.path()).unwrap();
        assert_eq!(weights.names(), ["a", "b"]);
        let a = weights.tensor("a").unwrap();
        assert_eq!(
            (a.dtype, a.shape, a.data),
            (SourceDtype::BF16, &[2usize, 2][..], &[1u8; 8][..])
        );
        let err = weights.tensor("c").unwrap_err().to_string();
        assert_eq!(err, "missing tensor 'c' in the checkpoint");
    }

    #[test]
    fn sharded_checkpoints_are_joined_through_the_index() {
        let dir = TestDir::new("st-sharded");
        write_safetensors(
            &dir.path().join("s1.safetensors"),
            &[("a", Dtype::F16, vec![1], vec![0; 2])],
        );
        write_safetensors(
            &dir.path().join("s2.safetensors"),
            &[("b", Dtype::F16, vec![1], vec![0; 2])],
        );
        let index =
            serde_json::json!({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}});
        std::fs::write(dir.path().join(INDEX_FILE), index.to_string()).unwrap();
        let weights = SafetensorsDir::open(dir.path()).unwrap();
        assert_eq!(weights.names(), ["a", "b"]);
    }

    #[test]
    fn missing_shard_and_corrupt_file_errors_name_the_file() {
        let dir = TestDir::new("st-missing-shard");
        let index = serde_json::json!({"weight_map": {"a": "gone.safetensors"}});
        std::fs::write(dir.path().join(INDEX_FILE), index.to_string()).unwrap();
        let err = format!("{:#}", SafetensorsDir::open(dir.path()).err().unwrap());
        assert!(
            err.contains("failed to open") && err.contains("gone.safetensors"),
            "{err}"
        );

        let dir = TestDir::new("st-corrupt");
        std::fs::write(
            dir.path().join(SINGLE_FILE),
            b"\x10\x00\x00\x00\x00\x00\x00\x00{not json",
        )
        .unwrap();
        let err = SafetensorsDir::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("model.safetensors' is not a valid safetensors file"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_dtypes_are_reported_per_tensor() {
        let dir = TestDir::new("st-dtype");
        write_safetensors(
            &dir.path().join(SINGLE_FILE),
            &[("ids", Dtype::I64, vec![1], vec![0; 8])],
        );
        let weights = SafetensorsDir::open(dir.path()).unwrap();
        let err = weights.tensor("ids").unwrap_err().to_string();
        assert!(err.contains("tensor 'ids'") && err.contains("I64"), "{err}");
    }

    #[test]
    fn an_empty_directory_says_what_is_expected() {
        let dir = TestDir::new("st-empty");
        let err = SafetensorsDir::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("expected model.safetensors or model.safetensors.index.json"),
            "{err}"
        );
    }
}
