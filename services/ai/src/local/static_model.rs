//! Static embedding models in Model2Vec's format (a directory holding `tokenizer.json`,
//! `model.safetensors` and `config.json`, as `StaticModel.save_pretrained` writes it and as
//! `minishlab/potion-*` models are published): a text's embedding is the mean of its tokens'
//! rows of the matrix, scaled by the tokens' weights when the model has them, and made of
//! length 1 when the model says to normalize. No network: the files are read from disk at
//! start, and a model that does not read stops the service with the reason.

use std::{collections::HashMap, path::Path};

use anyhow::{Context, anyhow, bail};
use safetensors::{Dtype, SafeTensors};
use tokenizers::Tokenizer;

/// Tokens of a text that count when the model's config names no `max_length` (Model2Vec's
/// own default); the rest is cut.
const MAX_TOKENS: usize = 512;

/// Largest matrix a model may have, in coordinates (rows times dimensions): 2 GiB of f32s.
const MAX_MATRIX: usize = 512 * 1024 * 1024;

/// Largest dimensions a model may have (a stored vector is this many f32s).
pub const MAX_DIMS: usize = 4096;

/// A loaded model.
pub struct StaticModel {
    tokenizer: Tokenizer,
    /// Row-major, `rows x dims`.
    matrix: Vec<f32>,
    dims: usize,
    /// Per token id: the weight its row is scaled by (vocabulary-quantized models).
    weights: Option<Vec<f32>>,
    /// Per token id: the row it reads (vocabulary-quantized models share rows).
    mapping: Option<Vec<usize>>,
    /// The unknown token, which says nothing of the text and is left out.
    unknown: Option<u32>,
    normalize: bool,
    /// Tokens of a text that count (the config's `max_length`; `null` there: all).
    max_tokens: Option<usize>,
    /// Characters read of a text: `max_tokens` times the vocabulary's median token length
    /// (tokenizing a long text to keep its first 512 tokens would cost its whole length).
    max_chars: Option<usize>,
}

impl std::fmt::Debug for StaticModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticModel")
            .field("dims", &self.dims)
            .field("rows", &(self.matrix.len() / self.dims.max(1)))
            .finish_non_exhaustive()
    }
}

fn floats(dtype: Dtype, raw: &[u8]) -> anyhow::Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::I8 => raw.iter().map(|b| f32::from(*b as i8)).collect(),
        other => bail!("a {other:?} tensor (f32, f64, f16, bf16 or i8 are read)"),
    })
}

impl StaticModel {
    /// Reads the model in `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).with_context(|| format!("{}", dir.join(name).display()))
        };
        let tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| anyhow!("tokenizer.json: {e}"))?;
        let config: serde_json::Value = match std::fs::read(dir.join("config.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).context("config.json")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
            Err(e) => return Err(e).context("config.json"),
        };
        let normalize = config
            .get("normalize")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let max_tokens = match config.get("max_length") {
            None => Some(MAX_TOKENS),
            Some(serde_json::Value::Null) => None,
            Some(n) => Some(
                n.as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| anyhow!("config.json: max_length is {n}"))?
                    as usize,
            ),
        };
        let bytes = read("model.safetensors")?;
        let tensors = SafeTensors::deserialize(&bytes).context("model.safetensors")?;
        let matrix = tensors
            .tensor("embeddings")
            .or_else(|_| tensors.tensor("0"))
            .context("model.safetensors has no `embeddings` tensor")?;
        let [rows, dims]: [usize; 2] = matrix
            .shape()
            .try_into()
            .map_err(|_| anyhow!("`embeddings` is not a matrix: {:?}", matrix.shape()))?;
        if dims == 0 || dims > MAX_DIMS || rows == 0 || rows.saturating_mul(dims) > MAX_MATRIX {
            bail!(
                "`embeddings` is {rows} x {dims}; at most {MAX_DIMS} dimensions and {MAX_MATRIX} coordinates"
            );
        }
        let data = floats(matrix.dtype(), matrix.data()).context("`embeddings`")?;
        let vocabulary = tokenizer.get_vocab_size(true);
        let weights = match tensors.tensor("weights") {
            Ok(t) => Some(floats(t.dtype(), t.data()).context("`weights`")?),
            Err(_) => None,
        };
        let mapping = match tensors.tensor("mapping") {
            Ok(t) => {
                let ids: Vec<usize> = match t.dtype() {
                    Dtype::I32 => t
                        .data()
                        .chunks_exact(4)
                        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                        .collect(),
                    Dtype::I64 => t
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
                        .collect(),
                    other => bail!("`mapping` is {other:?}; i32 or i64 is read"),
                };
                if let Some(bad) = ids.iter().find(|r| **r >= rows) {
                    bail!("`mapping` names row {bad} of a {rows}-row matrix");
                }
                Some(ids)
            }
            Err(_) => None,
        };
        let covered = mapping.as_ref().map_or(rows, Vec::len);
        if covered < vocabulary {
            bail!("the tokenizer has {vocabulary} tokens but the model {covered} rows for them");
        }
        // The unknown token, as the tokenizer's model names it (WordPiece, BPE and word-level
        // models by its text, Unigram models by its id).
        let spec: serde_json::Value = serde_json::from_str(
            &tokenizer
                .to_string(false)
                .map_err(|e| anyhow!("tokenizer.json: {e}"))?,
        )
        .context("tokenizer.json")?;
        let unknown = match spec["model"]["unk_token"].as_str() {
            Some(unk) => tokenizer.token_to_id(unk),
            None => spec["model"]["unk_id"].as_u64().map(|id| id as u32),
        };
        let mut lengths: Vec<usize> = tokenizer
            .get_vocab(false)
            .keys()
            .map(|t| t.chars().count())
            .collect();
        lengths.sort_unstable();
        let median = lengths.get(lengths.len() / 2).copied().unwrap_or(1).max(1);
        Ok(Self {
            tokenizer,
            matrix: data,
            dims,
            weights,
            mapping,
            unknown,
            normalize,
            max_tokens,
            max_chars: max_tokens.map(|n| n.saturating_mul(median)),
        })
    }

    /// Dimensions of its vectors.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The embedding of `text` (all zeros when none of its tokens is known).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let text = match self.max_chars.and_then(|m| text.char_indices().nth(m)) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        let mut sum = vec![0f32; self.dims];
        let Ok(encoding) = self.tokenizer.encode_fast(text, false) else {
            return sum;
        };
        let rows = self.matrix.len() / self.dims;
        let mut count = 0usize;
        // Cut to `max_tokens` first, then the unknown tokens left out, as Model2Vec does.
        let ids = encoding.get_ids();
        let ids = &ids[..self.max_tokens.map_or(ids.len(), |m| m.min(ids.len()))];
        for &id in ids.iter().filter(|id| Some(**id) != self.unknown) {
            let token = id as usize;
            let row = self
                .mapping
                .as_ref()
                .map_or(Some(token), |m| m.get(token).copied());
            let Some(row) = row.filter(|r| *r < rows) else {
                continue;
            };
            let weight = self
                .weights
                .as_ref()
                .and_then(|w| w.get(token).copied())
                .unwrap_or(1.0);
            let values = &self.matrix[row * self.dims..(row + 1) * self.dims];
            sum.iter_mut()
                .zip(values)
                .for_each(|(s, v)| *s += v * weight);
            count += 1;
        }
        if count == 0 {
            return sum;
        }
        sum.iter_mut().for_each(|s| *s /= count as f32);
        if self.normalize {
            super::embed::normalize(&mut sum);
        }
        sum
    }
}

/// Builds a model directory: a word-level tokenizer over `vocabulary` (row `i` is word `i`,
/// with `[UNK]` first) and its matrix. For tests and benchmarks.
pub fn write_word_model(
    dir: &Path,
    vocabulary: &[(&str, Vec<f32>)],
    normalize: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let dims = vocabulary.first().map_or(0, |(_, v)| v.len());
    let mut vocab: HashMap<String, usize> = HashMap::new();
    vocab.insert("[UNK]".into(), 0);
    let mut matrix: Vec<u8> = vec![0; dims * 4];
    for (i, (word, vector)) in vocabulary.iter().enumerate() {
        vocab.insert((*word).to_owned(), i + 1);
        matrix.extend(vector.iter().flat_map(|x| x.to_le_bytes()));
    }
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": 0, "content": "[UNK]", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string())?;
    let view = safetensors::tensor::TensorView::new(
        Dtype::F32,
        vec![vocabulary.len() + 1, dims],
        &matrix,
    )?;
    let bytes = safetensors::serialize([("embeddings", view)], None)?;
    std::fs::write(dir.join("model.safetensors"), bytes)?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"model_type": "model2vec", "architectures": ["StaticModel"],
            "hidden_dim": dims, "normalize": normalize})
        .to_string(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_known_tokens_normalized() {
        let dir = std::env::temp_dir().join(format!("agora-static-{}", uuid::Uuid::now_v7()));
        write_word_model(
            &dir,
            &[
                ("car", vec![1.0, 0.0, 0.0]),
                ("automobile", vec![1.0, 0.0, 0.0]),
                ("banana", vec![0.0, 3.0, 0.0]),
            ],
            true,
        )
        .unwrap();
        let model = StaticModel::load(&dir).unwrap();
        assert_eq!(model.dims(), 3);
        assert_eq!(model.embed("Car"), vec![1.0, 0.0, 0.0]);
        assert_eq!(model.embed("automobile zzz"), vec![1.0, 0.0, 0.0]);
        let both = model.embed("car banana");
        assert!((both[0] - 0.5f32 / (0.5f32 * 0.5 + 1.5 * 1.5).sqrt()).abs() < 1e-6);
        assert_eq!(model.embed("qqq"), vec![0.0; 3]);
        std::fs::write(dir.join("model.safetensors"), b"not a tensor file").unwrap();
        assert!(
            StaticModel::load(&dir)
                .unwrap_err()
                .to_string()
                .contains("model.safetensors")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
