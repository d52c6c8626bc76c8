//! Fused rescale + normalize of uint8 samples, as transformers' torchvision backend does it:
//! `mean' = mean * (1/rescale_factor)`, `std' = std * (1/rescale_factor)` in f32, then
//! `(v - mean') / std'` as a true f32 division (for Qwen3-VL: `(v - 127.5) / 127.5`).
//! Every uint8 input has one output, so the result is a 256-entry table per channel.

use super::config::PreprocessConfig;

/// The normalized f32 value of every possible uint8 sample, per RGB channel.
pub struct NormalizeTable {
    channels: [[f32; 256]; 3],
}

impl NormalizeTable {
    pub fn new(config: &PreprocessConfig) -> Self {
        // torch: f32 tensor * Python float -> the scalar is rounded to f32 first.
        let inverse_rescale = (1.0 / config.rescale_factor) as f32;
        let channels = std::array::from_fn(|c| {
            let mean = config.image_mean[c] * inverse_rescale;
            let std = config.image_std[c] * inverse_rescale;
            std::array::from_fn(|v| (v as f32 - mean) / std)
        });
        Self { channels }
    }

    /// The normalized value of sample `value` in channel `channel` (0 = R, 1 = G, 2 = B).
    pub fn get(&self, channel: usize, value: u8) -> f32 {
        self.channels[channel][usize::from(value)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen3_vl_maps_uint8_to_minus_one_one() {
        let table = NormalizeTable::new(&PreprocessConfig::default());
        for c in 0..3 {
            assert_eq!(table.get(c, 0), -1.0);
            assert_eq!(table.get(c, 255), 1.0);
            assert_eq!(table.get(c, 127), -0.5 / 127.5);
            assert_eq!(table.get(c, 128), 0.5 / 127.5);
        }
    }

    #[test]
    fn is_a_true_division_not_a_reciprocal_multiply() {
        let table = NormalizeTable::new(&PreprocessConfig::default());
        let divided: Vec<f32> = (0..=255u8)
            .map(|v| (f32::from(v) - 127.5) / 127.5)
            .collect();
        let multiplied: Vec<f32> = (0..=255u8)
            .map(|v| (f32::from(v) - 127.5) * (1.0 / 127.5))
            .collect();
        assert_ne!(
            divided, multiplied,
            "the two roundings must differ somewhere"
        );
        for v in 0..=255u8 {
            assert_eq!(
                table.get(1, v).to_bits(),
                divided[usize::from(v)].to_bits(),
                "v = {v}"
            );
        }
    }

    #[test]
    fn per_channel_mean_and_std_are_scaled_by_the_rescale_factor() {
        let config = PreprocessConfig {
            image_mean: [0.25, 0.5, 0.75],
            image_std: [0.5, 0.25, 0.125],
            ..PreprocessConfig::default()
        };
        let table = NormalizeTable::new(&config);
        assert_eq!(table.get(0, 100), (100.0 - 63.75) / 127.5);
        assert_eq!(table.get(1, 100), (100.0 - 127.5) / 63.75);
        assert_eq!(table.get(2, 100), (100.0 - 191.25) / 31.875);
    }
}
