//! The mixture-of-experts feed-forward of Qwen3-VL-MoE (Qwen3-VL-30B-A3B), as transformers'
//! `Qwen3VLMoeTextSparseMoeBlock` computes it: a router scores every expert for each token,
//! the `used` largest softmax probabilities choose the experts and, divided by their sum,
//! weight the chosen experts' SwiGLU outputs. Rows are grouped by expert, so a pass reads
//! each chosen expert's weights once for all its rows, and a decode step reads only the
//! experts its token chose. The chosen experts run side by side in one parallel region (a
//! decode step's eight small experts would otherwise wake the pool 24 times a layer); their
//! outputs are added in expert order, so the result does not depend on the threads.
use anyhow::Result;
use rayon::prelude::*;

use super::config::ExpertsConfig;
use super::weights::{Matrix, Weights};
use crate::kernels::activation::silu_mul;

pub struct Experts {
    /// `[count, hidden]`: one logit per expert.
    router: Matrix,
    gate: Vec<Matrix>,
    up: Vec<Matrix>,
    down: Vec<Matrix>,
    used: usize,
}

/// The rows one expert serves in a pass, each with its routing weight.
type Routes = Vec<Vec<(usize, f32)>>;

impl Experts {
    pub fn load(w: &Weights, hidden: usize, cfg: &ExpertsConfig) -> Result<Self> {
        let (count, ff) = (cfg.count, cfg.feed_forward);
        Ok(Self {
            router: w.matrix("ffn_gate_inp.weight", count, hidden)?,
            gate: w.experts("ffn_gate_exps.weight", count, ff, hidden)?,
            up: w.experts("ffn_up_exps.weight", count, ff, hidden)?,
            down: w.experts("ffn_down_exps.weight", count, hidden, ff)?,
            used: cfg.used,
        })
    }

    /// The feed-forward of `x` (`m` rows), each row through its chosen experts.
    pub fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        let hidden = self.router.cols();
        let routes = route(&self.router.forward(x, m), self.gate.len(), self.used);
        let chosen: Vec<(usize, &Vec<(usize, f32)>)> = routes
            .iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .collect();
        let outputs: Vec<Vec<f32>> = chosen
            .par_iter()
            .map(|&(expert, rows)| self.expert_forward(expert, x, rows))
            .collect();
        let mut out = vec![0.0; m * hidden];
        // Experts in index order, each adding its weighted output (transformers' order).
        for ((_, rows), output) in chosen.iter().zip(&outputs) {
            for (&(row, weight), y) in rows.iter().zip(output.chunks_exact(hidden)) {
                for (o, &v) in out[row * hidden..(row + 1) * hidden].iter_mut().zip(y) {
                    *o += v * weight;
                }
            }
        }
        out
    }

    /// One expert's SwiGLU over the rows of `x` routed to it, in their order.
    fn expert_forward(&self, expert: usize, x: &[f32], rows: &[(usize, f32)]) -> Vec<f32> {
        let hidden = self.router.cols();
        let n = rows.len();
        let mut inputs = Vec::with_capacity(n * hidden);
        for &(row, _) in rows {
            inputs.extend_from_slice(&x[row * hidden..(row + 1) * hidden]);
        }
        let mut gate = self.gate[expert].forward(&inputs, n);
        silu_mul(&mut gate, &self.up[expert].forward(&inputs, n));
        self.down[expert].forward(&gate, n)
    }

    /// `forward` over consecutive groups of rows, each group's result that of the group alone.
    pub fn forward_groups(&self, x: &[f32], groups: &[usize]) -> Vec<f32> {
        let hidden = self.router.cols();
        let mut out = Vec::with_capacity(x.len());
        let mut start = 0;
        for &rows in groups {
            out.extend(self.forward(&x[start * hidden..(start + rows) * hidden], rows));
            start += rows;
        }
        out
    }
}

/// For every expert, the rows routed to it and their weights: per row the softmax of the
/// router logits, its `used` largest probabilities (equal ones by lower index), each divided by
/// their sum.
fn route(logits: &[f32], experts: usize, used: usize) -> Routes {
    let mut routes: Routes = vec![Vec::new(); experts];
    let mut order: Vec<usize> = Vec::with_capacity(experts);
    for (row, logits) in logits.chunks_exact(experts).enumerate() {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
        let total: f32 = exps.iter().sum();
        order.clear();
        order.extend(0..experts);
        order.sort_by(|&a, &b| exps[b].total_cmp(&exps[a]).then(a.cmp(&b)));
        let chosen = &order[..used];
        let probabilities: Vec<f32> = chosen.iter().map(|&e| exps[e] / total).collect();
        let sum: f32 = probabilities.iter().sum();
        for (&expert, p) in chosen.iter().zip(probabilities) {
            routes[expert].push((row, p / sum));
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_take_the_largest_probabilities_renormalised() {
        // Two rows over four experts, two per row.
        let logits = [0.0, 2.0, 1.0, -1.0, 3.0, 3.0, 0.0, 5.0];
        let routes = route(&logits, 4, 2);
        let p = |l: &[f32], e: usize| {
            let exps: Vec<f32> = l.iter().map(|x| x.exp()).collect();
            exps[e] / exps.iter().sum::<f32>()
        };
        let (a, b) = (p(&logits[..4], 1), p(&logits[..4], 2));
        assert_eq!(routes[1][0].0, 0);
        assert!((routes[1][0].1 - a / (a + b)).abs() < 1e-6);
        assert!((routes[2][0].1 - b / (a + b)).abs() < 1e-6);
        // Row 1: expert 3 first, then the tie 0/1 goes to the lower index.
        assert_eq!(routes[3], vec![(1, routes[3][0].1)]);
        assert_eq!(routes[0].len(), 1);
        assert!(routes[1].iter().all(|&(row, _)| row == 0));
        let row1: f32 = [&routes[0], &routes[3]]
            .iter()
            .flat_map(|r| r.iter().filter(|(row, _)| *row == 1).map(|(_, w)| w))
            .sum();
        assert!((row1 - 1.0).abs() < 1e-6);
    }
}
