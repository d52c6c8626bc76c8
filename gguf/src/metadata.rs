//! An ordered GGUF metadata table (key → `MetaValue`, in file order, keys unique) with typed
//! getters that fail with the key's name when it is missing or holds the wrong type. The
//! writer takes one, the reader produces one.
use std::collections::HashMap;

use crate::error::{GgufError, Result};
use crate::meta_value::{MetaArray, MetaValue};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, MetaValue)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Adds `key`; a key may appear only once.
    pub fn insert(&mut self, key: impl Into<String>, value: MetaValue) -> Result<()> {
        let key = key.into();
        if self.index.contains_key(&key) {
            return Err(GgufError::DuplicateKey(key));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.index
            .get(key)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, value)| value)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Entries in insertion (file) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key` converted by `read`, `None` when absent, an error naming the key and
    /// the expected type when present with another type.
    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        read: impl FnOnce(&'a MetaValue) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => read(value)
                .map(Some)
                .ok_or_else(|| GgufError::WrongValueType {
                    key: key.to_string(),
                    found: value.type_description(),
                    value: value.to_string(),
                    expected,
                }),
        }
    }

    fn required<T>(key: &str, value: Result<Option<T>>) -> Result<T> {
        value?.ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    pub fn get_u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.typed(key, "an integer that fits in u32", MetaValue::as_u32)
    }

    pub fn get_u64_opt(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, "an integer that fits in u64", MetaValue::as_u64)
    }

    pub fn get_f32_opt(&self, key: &str) -> Result<Option<f32>> {
        self.typed(key, "f32", MetaValue::as_f32)
    }

    pub fn get_bool_opt(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, "bool", MetaValue::as_bool)
    }

    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>> {
        self.typed(key, "string", MetaValue::as_str)
    }

    pub fn get_u32_array_opt(&self, key: &str) -> Result<Option<Vec<u32>>> {
        self.typed(
            key,
            "array of integers that fit in u32",
            MetaValue::as_u32_array,
        )
    }

    pub fn get_f32_array_opt(&self, key: &str) -> Result<Option<&[f32]>> {
        self.typed(key, "array of f32", MetaValue::as_f32_array)
    }

    pub fn get_bool_array_opt(&self, key: &str) -> Result<Option<&[bool]>> {
        self.typed(key, "array of bool", MetaValue::as_bool_array)
    }

    pub fn get_str_array_opt(&self, key: &str) -> Result<Option<&[String]>> {
        self.typed(key, "array of string", MetaValue::as_str_array)
    }

    pub fn get_array_opt(&self, key: &str) -> Result<Option<&MetaArray>> {
        self.typed(key, "array", MetaValue::as_array)
    }

    pub fn get_u32(&self, key: &str) -> Result<u32> {
        Self::required(key, self.get_u32_opt(key))
    }

    pub fn get_u64(&self, key: &str) -> Result<u64> {
        Self::required(key, self.get_u64_opt(key))
    }

    pub fn get_f32(&self, key: &str) -> Result<f32> {
        Self::required(key, self.get_f32_opt(key))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        Self::required(key, self.get_bool_opt(key))
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        Self::required(key, self.get_str_opt(key))
    }

    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>> {
        Self::required(key, self.get_u32_array_opt(key))
    }

    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        Self::required(key, self.get_f32_array_opt(key))
    }

    pub fn get_bool_array(&self, key: &str) -> Result<&[bool]> {
        Self::required(key, self.get_bool_array_opt(key))
    }

    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        Self::required(key, self.get_str_array_opt(key))
    }

    pub fn get_array(&self, key: &str) -> Result<&MetaArray> {
        Self::required(key, self.get_array_opt(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut meta = Metadata::new();
        meta.insert("general.architecture", MetaValue::String("qwen3vl".into()))
            .unwrap();
        meta.insert("qwen3vl.block_count", MetaValue::U32(28))
            .unwrap();
        meta.insert("eps", MetaValue::F32(1e-6)).unwrap();
        meta
    }

    #[test]
    fn keys_keep_insertion_order_and_must_be_unique() {
        let mut meta = sample();
        let keys: Vec<&str> = meta.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["general.architecture", "qwen3vl.block_count", "eps"]);
        let err = meta.insert("eps", MetaValue::F32(1.0)).unwrap_err();
        assert_eq!(err.to_string(), "duplicate metadata key 'eps'");
    }

    #[test]
    fn getters_name_the_key_when_missing_or_mistyped() {
        let meta = sample();
        assert_eq!(meta.get_u32("qwen3vl.block_count").unwrap(), 28);
        assert_eq!(meta.get_str("general.architecture").unwrap(), "qwen3vl");
        let missing = meta.get_u32("qwen3vl.context_length").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "missing metadata key 'qwen3vl.context_length'"
        );
        let mistyped = meta.get_f32("general.architecture").unwrap_err();
        assert_eq!(
            mistyped.to_string(),
            "metadata key 'general.architecture' is string (\"qwen3vl\"), expected f32"
        );
        assert_eq!(meta.get_bool_opt("absent").unwrap(), None);
        assert!(meta.get_bool_opt("eps").is_err());
    }
}
