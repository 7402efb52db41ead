//! The neural student: a small decoder-only transformer (`autotune-neural`) as an AutoTune
//! [`Student`]. `fit` adds the new demonstrations to a replay buffer and trains on minibatches
//! drawn from all of it (continued training across phases); generation is batched and greedy
//! (or sampled at a temperature) with a KV cache, on an inference copy of the weights that is
//! refreshed after every fit.

use std::sync::Mutex;

use autotune_core::{CoreError, Demo, FitStats, Policy, Prompt, Result, Student, Token, Trace};
use autotune_neural::{
    Example, GenerateOptions, NeuralModel, Sampling, Trainer, TrainerConfig, TransformerConfig,
};

/// How a [`NeuralStudent`] trains and generates.
#[derive(Clone, Debug)]
pub struct NeuralStudentConfig {
    pub model: TransformerConfig,
    pub trainer: TrainerConfig,
    /// Passes over the new demonstrations per fit, counted in minibatches of the replay buffer.
    pub epochs: f64,
    /// Fewest and most optimisation steps of one fit.
    pub min_steps: usize,
    pub max_steps: usize,
    /// End of generation; the answer is what follows `answer_marker`.
    pub eos: Token,
    pub answer_marker: Token,
    pub max_new_tokens: usize,
}

/// A trainable transformer student.
pub struct NeuralStudent {
    cfg: NeuralStudentConfig,
    trainer: Trainer,
    replay: Vec<Example>,
    inference: Mutex<NeuralModel>,
}

impl NeuralStudent {
    pub fn new(cfg: NeuralStudentConfig) -> Result<Self> {
        let trainer = Trainer::new(cfg.model.clone(), cfg.trainer.clone())
            .map_err(|e| CoreError::Student(e.to_string()))?;
        let inference = Mutex::new(trainer.inference_model());
        Ok(Self {
            cfg,
            trainer,
            replay: Vec::new(),
            inference,
        })
    }

    fn traces(&self, prompts: &[Prompt], sampling: Sampling) -> Vec<Trace> {
        let inputs: Vec<Vec<u32>> = prompts.iter().map(|p| p.tokens.clone()).collect();
        let opts = GenerateOptions {
            max_new_tokens: self.cfg.max_new_tokens,
            eos: Some(self.cfg.eos),
            batch_size: 64,
            sampling,
        };
        let model = self.inference.lock().unwrap_or_else(|e| e.into_inner());
        let outs = model
            .generate(&inputs, &opts)
            .unwrap_or_else(|_| vec![Vec::new(); prompts.len()]);
        outs.into_iter()
            .map(|mut steps| {
                // The answer: after the last marker, with the end token (as the teacher writes
                // it); no marker, no answer.
                let answer_len = match steps.iter().rposition(|&t| t == self.cfg.answer_marker) {
                    Some(i) => {
                        steps.push(self.cfg.eos);
                        steps.len() - i - 1
                    }
                    None => 0,
                };
                Trace::new(steps, answer_len)
            })
            .collect()
    }
}

impl Policy for NeuralStudent {
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        self.traces(prompts, Sampling::Greedy)
    }

    fn sample_batch(&self, prompts: &[Prompt], temperature: f64, seed: u64) -> Vec<Trace> {
        self.traces(prompts, Sampling::Temperature { temperature, seed })
    }
}

impl Student for NeuralStudent {
    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats> {
        if new_demos.is_empty() {
            return Ok(FitStats {
                steps: 0,
                examples: 0,
                consistent: true,
            });
        }
        for d in new_demos {
            self.replay
                .push(Example::new(&d.prompt.tokens, &d.trace.steps));
        }
        let batch = self.cfg.trainer.batch_size.max(1);
        let steps = ((self.cfg.epochs * new_demos.len() as f64) / batch as f64).ceil() as usize;
        let steps = steps.clamp(
            self.cfg.min_steps,
            self.cfg.max_steps.max(self.cfg.min_steps),
        );
        self.trainer
            .fit(&self.replay, steps)
            .map_err(|e| CoreError::Student(e.to_string()))?;
        *self.inference.lock().unwrap_or_else(|e| e.into_inner()) = self.trainer.inference_model();
        Ok(FitStats {
            steps: steps as u64,
            examples: (steps * batch) as u64,
            consistent: true,
        })
    }
}
