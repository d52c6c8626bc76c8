//! Runtime on top of the model: loading a model file with everything needed to serve
//! it, sessions that keep a KV cache across turns (longest-common-prefix reuse), the
//! sampler, the generation loop and the compute thread pool.
pub mod bundle;
pub mod constraint;
pub mod sampler;
pub mod scheduler;
pub mod session;
pub mod stop;
pub mod threads;
pub mod vision_cache;

pub use bundle::ModelBundle;
pub use sampler::{Sampler, SamplingParams};
pub use session::{FinishReason, GenerationOutput, GenerationParams, Session, Timings, TokenEvent};
