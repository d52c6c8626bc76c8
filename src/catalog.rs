//! The model catalogue (`models.toml`, built into the binary; `GLIMPSE_MODELS` names
//! another file): which models glimpse knows by name, where on the Hugging Face Hub each
//! lives, and per weight profile the converted file's size and the memory it needs. Names
//! are `model` or `model:profile` (`qwen3-vl-2b:q8_0`).
use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// The catalogue that ships with glimpse.
pub const BUILTIN: &str = include_str!("../models.toml");

const GB: f64 = 1e9;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// `model:profile` used when no model is given.
    pub default: String,
    #[serde(rename = "model")]
    pub models: Vec<CatalogModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    pub name: String,
    /// Hugging Face repository id, e.g. `Qwen/Qwen3-VL-2B-Instruct`.
    pub repo: String,
    /// Branch, tag or commit to download.
    pub revision: String,
    #[serde(default)]
    pub description: String,
    pub default_profile: String,
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub file_gb: f64,
    pub ram_gb: f64,
}

impl Profile {
    pub fn ram_bytes(&self) -> u64 {
        (self.ram_gb * GB) as u64
    }
}

/// A catalogue entry with the profile chosen.
#[derive(Debug)]
pub struct Choice<'a> {
    pub model: &'a CatalogModel,
    pub profile: &'a str,
    pub sizes: Profile,
}

/// The weight types `glimpse convert --type` takes that a catalogue profile may name.
const PROFILES: [&str; 4] = ["f32", "f16", "q8_0", "q4_k"];

impl Catalog {
    pub fn parse(text: &str) -> Result<Self> {
        let catalog: Catalog = toml::from_str(text).context("models.toml is malformed")?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// `GLIMPSE_MODELS` if set, else the built-in catalogue.
    pub fn load() -> Result<Self> {
        match std::env::var_os("GLIMPSE_MODELS") {
            Some(path) => {
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read GLIMPSE_MODELS '{}'", path.to_string_lossy())
                })?;
                Self::parse(&text).with_context(|| format!("in '{}'", path.to_string_lossy()))
            }
            None => Self::parse(BUILTIN),
        }
    }

    fn validate(&self) -> Result<()> {
        let mut names = std::collections::HashSet::new();
        for model in &self.models {
            if !names.insert(model.name.as_str()) {
                bail!("model '{}' is listed twice", model.name);
            }
            if model.name.is_empty() || model.name.contains([':', '/', ' ']) {
                bail!(
                    "model name '{}' must be non-empty, without ':', '/' or spaces",
                    model.name
                );
            }
            for (profile, sizes) in &model.profiles {
                if !PROFILES.contains(&profile.as_str()) {
                    bail!(
                        "model '{}': profile '{profile}' is not one of {}",
                        model.name,
                        PROFILES.join(", ")
                    );
                }
                if !(sizes.file_gb > 0.0 && sizes.ram_gb >= sizes.file_gb * 0.5) {
                    bail!(
                        "model '{}', profile '{profile}': implausible sizes {sizes:?}",
                        model.name
                    );
                }
            }
            if !model.profiles.contains_key(&model.default_profile) {
                bail!(
                    "model '{}': default profile '{}' is not among its profiles",
                    model.name,
                    model.default_profile
                );
            }
        }
        self.choose(&self.default)
            .context("the catalogue's default")?;
        Ok(())
    }

    /// Whether `spec` names a catalogue model (`name` or `name:profile`).
    pub fn knows(&self, spec: &str) -> bool {
        let name = spec.split(':').next().unwrap_or_default();
        self.models.iter().any(|m| m.name == name)
    }

    /// The entry and profile `spec` names; errors list what exists.
    pub fn choose(&self, spec: &str) -> Result<Choice<'_>> {
        let (name, profile) = match spec.split_once(':') {
            Some((name, profile)) => (name, Some(profile)),
            None => (spec, None),
        };
        let model = self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            anyhow!(
                "unknown model '{name}'; the catalogue has: {}",
                self.models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let profile = profile.unwrap_or(&model.default_profile);
        let (profile, sizes) = model.profiles.get_key_value(profile).ok_or_else(|| {
            anyhow!(
                "model '{name}' has no profile '{profile}'; it has: {}",
                model
                    .profiles
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        Ok(Choice {
            model,
            profile,
            sizes: *sizes,
        })
    }

    /// The profiles of `model` that fit in `available_bytes`, smallest memory last.
    pub fn fitting_profiles(model: &CatalogModel, available_bytes: u64) -> Vec<&str> {
        let mut fitting: Vec<(&str, &Profile)> = model
            .profiles
            .iter()
            .filter(|(_, p)| p.ram_bytes() <= available_bytes)
            .map(|(name, p)| (name.as_str(), p))
            .collect();
        fitting.sort_by(|a, b| b.1.ram_gb.total_cmp(&a.1.ram_gb));
        fitting.into_iter().map(|(name, _)| name).collect()
    }
}

/// Refuses a profile that needs more memory than `available_bytes`, naming the profiles
/// of the same model that fit.
pub fn check_memory(choice: &Choice, available_bytes: u64) -> Result<()> {
    let needed = choice.sizes.ram_bytes();
    if needed <= available_bytes {
        return Ok(());
    }
    let fitting = Catalog::fitting_profiles(choice.model, available_bytes);
    let suggestion = match fitting.first() {
        Some(profile) => format!(
            "use '{}:{profile}' ({:.1} GB), which fits",
            choice.model.name, choice.model.profiles[*profile].ram_gb
        ),
        None => "no profile of this model fits; free memory or use a larger machine".into(),
    };
    bail!(
        "'{}:{}' needs about {:.1} GB of memory but {:.1} GB is available: {suggestion} \
         (set GLIMPSE_IGNORE_MEMORY=1 to try anyway)",
        choice.model.name,
        choice.profile,
        choice.sizes.ram_gb,
        available_bytes as f64 / GB
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_parses_and_names_its_default() {
        let catalog = Catalog::parse(BUILTIN).unwrap();
        let choice = catalog.choose(&catalog.default).unwrap();
        assert_eq!(choice.model.repo, "Qwen/Qwen3-VL-2B-Instruct");
        assert_eq!(choice.profile, "q4_k");
        let q8 = catalog.choose("qwen3-vl-2b:q8_0").unwrap();
        assert!(q8.sizes.ram_gb > choice.sizes.ram_gb);
        assert_eq!(catalog.choose("qwen3-vl-2b").unwrap().profile, "q4_k");
        assert!(catalog.knows("qwen3-vl-2b:f16"));
        assert!(!catalog.knows("model.gguf"));
        // Every model offers every profile, bigger models needing more memory.
        let mut previous = 0.0;
        for name in [
            "qwen3-vl-2b",
            "qwen3-vl-4b",
            "qwen3-vl-8b",
            "qwen3-vl-30b-a3b",
        ] {
            let model = catalog.choose(name).unwrap().model;
            assert_eq!(
                model.profiles.keys().collect::<Vec<_>>(),
                ["f16", "f32", "q4_k", "q8_0"],
                "{name}"
            );
            let q4 = model.profiles["q4_k"].ram_gb;
            assert!(q4 > previous, "{name}");
            previous = q4;
            // The Thinking twin: same architecture and sizes, its own repository.
            let thinking = catalog.choose(&format!("{name}-thinking")).unwrap().model;
            assert_eq!(thinking.profiles, model.profiles, "{name}");
            assert_eq!(
                thinking.repo,
                model.repo.replace("-Instruct", "-Thinking"),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_names_and_profiles_list_what_exists() {
        let catalog = Catalog::parse(BUILTIN).unwrap();
        let error = catalog.choose("qwen9").unwrap_err().to_string();
        assert!(
            error.contains(
                "the catalogue has: qwen3-vl-2b, qwen3-vl-4b, qwen3-vl-8b, qwen3-vl-30b-a3b"
            ),
            "{error}"
        );
        let error = catalog.choose("qwen3-vl-2b:q2").unwrap_err().to_string();
        assert!(error.contains("it has: f16, f32, q4_k, q8_0"), "{error}");
    }

    #[test]
    fn malformed_catalogues_are_refused_with_the_reason() {
        let entry = |profile: &str, extra: &str| {
            format!(
                "default = \"m:{profile}\"\n[[model]]\nname = \"m\"\nrepo = \"a/b\"\nrevision = \"main\"\n\
                 default_profile = \"{profile}\"\n{extra}[model.profiles]\n{profile} = {{ file_gb = 1.0, ram_gb = 1.5 }}\n"
            )
        };
        assert!(Catalog::parse(&entry("q8_0", "")).is_ok());
        for (text, needle) in [
            (entry("q3", ""), "not one of"),
            (entry("q8_0", "colour = \"red\"\n"), "malformed"),
            ("default = 3".to_owned(), "malformed"),
            (
                entry("q8_0", "").replace("default = \"m:q8_0\"", "default = \"x\""),
                "default",
            ),
        ] {
            let error = format!("{:#}", Catalog::parse(&text).unwrap_err());
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn a_profile_too_large_for_the_memory_suggests_one_that_fits() {
        let catalog = Catalog::parse(BUILTIN).unwrap();
        let f32 = catalog.choose("qwen3-vl-2b:f32").unwrap();
        let error = check_memory(&f32, 3_000_000_000).unwrap_err().to_string();
        assert!(error.contains("needs about 8.9 GB"), "{error}");
        assert!(error.contains("use 'qwen3-vl-2b:q8_0'"), "{error}");
        assert!(check_memory(&f32, 16_000_000_000).is_ok());
        let error = check_memory(&f32, 1_000_000_000).unwrap_err().to_string();
        assert!(error.contains("no profile of this model fits"), "{error}");
    }
}
