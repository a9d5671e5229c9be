//! The chunk vectors of recently searched collections, held in memory so that a semantic
//! search scores vectors instead of reading them. An entry is good while its collection's
//! `generation` in the store is the one it was read at (every replica checks, so a change
//! made through another replica is seen at the next search). Past the memory budget, the
//! least recently used collections are let go; a collection bigger than the whole budget is
//! read for each search. Vectors are held as bytes (each coordinate scaled to -127..127 by
//! its vector's largest), a quarter of their stored size; rankings are the same to within
//! the rounding.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use agora_shared::{AppResult, db::Db};

use crate::local::embed;

/// One collection's vectors: row `i` is `data[i * dims..(i + 1) * dims]` times `scales[i]`.
pub struct Vectors {
    pub generation: i64,
    pub dims: usize,
    pub ids: Vec<(Arc<str>, Arc<str>)>,
    pub data: Vec<i8>,
    pub scales: Vec<f32>,
}

/// A vector as bytes and the scale that gives it back.
fn quantize(v: &[f32], into: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        into.extend(std::iter::repeat_n(0, v.len()));
        return 0.0;
    }
    let scale = max / 127.0;
    into.extend(v.iter().map(|x| (x / scale).round() as i8));
    scale
}

impl Vectors {
    fn bytes(&self) -> usize {
        self.data.len() + self.ids.len() * 100
    }

    /// The `k` rows most similar to `query` with a positive score: (chunk id, document id,
    /// cosine), best first, among the documents `allowed` lets through.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        allowed: &dyn Fn(&str) -> bool,
    ) -> Vec<(Arc<str>, Arc<str>, f32)> {
        // The query as bytes too: byte products summed in i32 are what CPUs do many of at once.
        if query.len() != self.dims {
            return Vec::new();
        }
        let mut q = Vec::with_capacity(query.len());
        let query_scale = quantize(query, &mut q);
        let mut scored: Vec<(usize, f32)> = self
            .data
            .chunks_exact(self.dims)
            .enumerate()
            .map(|(i, row)| {
                let dot: i32 = q
                    .iter()
                    .zip(row)
                    .map(|(a, b)| i32::from(*a) * i32::from(*b))
                    .sum();
                (i, dot as f32 * self.scales[i] * query_scale)
            })
            .filter(|(i, s)| *s > 0.0 && allowed(&self.ids[*i].1))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
            .into_iter()
            .map(|(i, s)| (self.ids[i].0.clone(), self.ids[i].1.clone(), s))
            .collect()
    }
}

/// The cache.
pub struct VectorCache {
    budget: usize,
    entries: Mutex<HashMap<String, (Arc<Vectors>, Instant)>>,
    /// One read of the store at a time: searches that miss wait for the read in progress
    /// (and then find its result) instead of each reading the whole collection.
    loading: tokio::sync::Mutex<()>,
}

impl VectorCache {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            budget: budget_bytes,
            entries: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// The vectors of the tenant's `collection` as of `generation`, of `dims` coordinates;
    /// `None` if the collection has moved on since `generation` was read (its model may
    /// have changed: they would not be comparable with the query).
    pub async fn get(
        &self,
        db: &Db,
        tenant: &str,
        collection: &str,
        generation: i64,
        dims: usize,
    ) -> AppResult<Option<Arc<Vectors>>> {
        if let Some(hit) = self.hit(collection, generation) {
            return Ok(Some(hit));
        }
        let _loading = self.loading.lock().await;
        if let Some(hit) = self.hit(collection, generation) {
            return Ok(Some(hit));
        }
        let (t, c) = (tenant.to_owned(), collection.to_owned());
        let (now, rows) = db
            .read(move |conn| super::store::vectors(conn, &t, &c))
            .await?;
        if now != generation {
            return Ok(None);
        }
        let loaded = tokio::task::spawn_blocking(move || {
            let mut ids = Vec::with_capacity(rows.len());
            let mut data = Vec::with_capacity(rows.len() * dims);
            let mut scales = Vec::with_capacity(rows.len());
            for (chunk, document, blob) in rows {
                // A vector of another length (a model not this one) is not comparable.
                if let Some(v) = embed::from_bytes(&blob, dims) {
                    ids.push((Arc::from(chunk), Arc::from(document)));
                    scales.push(quantize(&v, &mut data));
                }
            }
            Vectors {
                generation,
                dims,
                ids,
                data,
                scales,
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("vector load failed: {e}"))?;
        let loaded = Arc::new(loaded);
        self.keep(collection, loaded.clone());
        Ok(Some(loaded))
    }

    fn hit(&self, collection: &str, generation: i64) -> Option<Arc<Vectors>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (hit, used) = entries.get_mut(collection)?;
        if hit.generation != generation {
            return None;
        }
        *used = Instant::now();
        Some(hit.clone())
    }

    fn keep(&self, collection: &str, vectors: Arc<Vectors>) {
        let size = vectors.bytes();
        if size > self.budget {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Never an older generation over a newer one.
        if entries
            .get(collection)
            .is_some_and(|(kept, _)| kept.generation > vectors.generation)
        {
            return;
        }
        entries.remove(collection);
        let mut used: usize = entries.values().map(|(v, _)| v.bytes()).sum();
        while used + size > self.budget {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((v, _)) = entries.remove(&oldest) {
                used -= v.bytes();
            }
        }
        entries.insert(collection.to_owned(), (vectors, Instant::now()));
    }
}
