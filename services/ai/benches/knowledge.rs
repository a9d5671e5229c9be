//! Prints what the knowledge base costs with the local model, on 2 cores:
//! - embeddings/s (the `lexical-hash-1024` model over chunk-sized texts);
//! - chunks indexed/s: documents of 1,000 chunks chunked, embedded and written with their
//!   full-text rows, as the workers do;
//! - search latency p50/p99 over `AGORA_BENCH_CHUNKS` (100,000) chunks in one tenant's
//!   collection, per mode (hybrid, semantic, keyword), 200 queries each, the vector cache warm
//!   (the first, cold search is printed apart);
//!
//! - re-embedding the whole collection with a static model (Model2Vec's format, 256
//!   dimensions over the corpus' vocabulary), as the workers do after a change of model;
//!
//! on SQLite, and on PostgreSQL too when `AGORA_BENCH_DATABASE_URL` names a server; then
//! - the router's overhead per call: 2,000 chat completions through the router to a local
//!   fake provider, against the same calls made straight to it (p50/p99 of each, and of the
//!   difference of the medians).
//!
//! `cargo bench -p agora-ai --bench knowledge`.

use std::time::Instant;

use agora_ai::{
    AiConfig, AiState,
    knowledge::{
        chunk, search,
        store::{self, CollectionRow, NewChunk, NewDocument},
        vectors::VectorCache,
    },
    local::embed,
};
use agora_shared::{db::Db, testing::TestDb};

const WORDS: [&str; 48] = [
    "refund",
    "delivery",
    "warehouse",
    "invoice",
    "customer",
    "ticket",
    "zone",
    "team",
    "router",
    "fibre",
    "outage",
    "contract",
    "payment",
    "schedule",
    "technician",
    "meter",
    "signal",
    "antenna",
    "billing",
    "account",
    "address",
    "parcel",
    "courier",
    "return",
    "warranty",
    "repair",
    "install",
    "upgrade",
    "network",
    "modem",
    "cable",
    "voucher",
    "discount",
    "order",
    "stock",
    "supplier",
    "claim",
    "dispute",
    "refusal",
    "approval",
    "manager",
    "region",
    "north",
    "south",
    "urgent",
    "weekly",
    "monthly",
    "policy",
];

/// A deterministic stream of pseudo-random numbers (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as usize
    }

    /// A word: half the time one of the common words, else one of 4,000 rarer ones (a
    /// corpus of one small vocabulary would match every chunk on every word).
    fn word(&mut self) -> String {
        if self.next().is_multiple_of(2) {
            return WORDS[self.next() % WORDS.len()].to_owned();
        }
        const SYLLABLES: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ber", "dan", "fel", "gor", "hin",
            "jul", "mar", "pes",
        ];
        let n = self.next() % 4000;
        format!(
            "{}{}{}",
            SYLLABLES[n % 16],
            SYLLABLES[(n / 16) % 16],
            SYLLABLES[n / 256]
        )
    }

    fn sentence(&mut self, words: usize) -> String {
        let mut s: Vec<String> = (0..words).map(|_| self.word()).collect();
        s[0] = "The".into();
        format!("{} {}.", s.join(" "), self.next() % 10_000)
    }
}

fn nowhere() -> tonic::transport::Channel {
    let t = std::time::Duration::from_secs(1);
    agora_shared::grpc::channel("127.0.0.1:9", t, t).unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The static model's name in the bench.
const STATIC: &str = "bench-static";

async fn run(label: &str, db: Db, chunks: usize, model: &std::path::Path) {
    let mut config = AiConfig::default();
    config.embedding_models.insert(
        STATIC.into(),
        agora_ai::config::EmbeddingModelConfig {
            path: model.display().to_string(),
        },
    );
    let state = AiState {
        db: db.clone(),
        embedders: agora_ai::embedders::Embedders::load(&config).unwrap(),
        vectors: VectorCache::new(config.vector_cache_mib * 1024 * 1024),
        config,
        wake: tokio::sync::Notify::new(),
        router: agora_ai::router::Router::new(),
        sealer: None,
        extraction: std::sync::Arc::new(tokio::sync::Semaphore::new(2)),
        local_work: std::sync::Arc::new(tokio::sync::Semaphore::new(4)),
        // Recommendations are not measured here: channels that are never used.
        tickets: nowhere(),
        analytics: nowhere(),
        auth: nowhere(),
        auth_peer_secret: None,
    };
    let now = agora_shared::db::now();
    let collection = CollectionRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: "bench-tenant".into(),
        name: "bench".into(),
        description: None,
        embedding_model: embed::MODEL.into(),
        generation: 0,
        created_by: "bench".into(),
        created_at: now,
        updated_at: now,
        next_embedding_model: None,
        reembed_started_at: None,
        reembed_change: 0,
    };
    let row = collection.clone();
    db.write(move |conn| store::create_collection(conn, &row, 10))
        .await
        .unwrap();

    // Documents of 1,000 chunks: text made, chunked, embedded and written as a worker does.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let per_document = 1000;
    let started = Instant::now();
    let mut embed_secs = 0.0;
    for d in 0..chunks.div_ceil(per_document) {
        let text: String = (0..per_document)
            .map(|i| {
                format!(
                    "## Section {i}\n\n{} {} {}\n\n",
                    rng.sentence(14),
                    rng.sentence(12),
                    rng.sentence(10)
                )
            })
            .collect();
        let id = uuid::Uuid::now_v7().to_string();
        let doc = NewDocument {
            id: id.clone(),
            tenant_id: collection.tenant_id.clone(),
            collection_id: collection.id.clone(),
            title: format!("Document {d}"),
            format: "markdown".into(),
            bytes: text.len() as i64,
            content: Vec::new(),
            metadata: "{}".into(),
            status: store::PROCESSING.into(),
            attempt: 1,
            claimed_at: Some(now),
            created_by: "bench".into(),
            created_at: now,
            updated_at: now,
        };
        db.write(move |conn| store::insert_document(conn, &doc, 100_000))
            .await
            .unwrap();
        let embedding = Instant::now();
        let rows: Vec<NewChunk> = chunk::chunk(&text, 1000, 150)
            .into_iter()
            .enumerate()
            .map(|(i, c)| NewChunk {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: collection.tenant_id.clone(),
                collection_id: collection.id.clone(),
                document_id: id.clone(),
                ordinal: i as i32,
                embedding: embed::to_bytes(&embed::embed(&c.indexed_text())),
                embedding_alt: None,
                spare_change: None,
                heading: c.heading,
                text: c.text,
                start_offset: c.start as i64,
                end_offset: c.end as i64,
            })
            .collect();
        embed_secs += embedding.elapsed().as_secs_f64();
        let models = store::Models {
            current: embed::MODEL.into(),
            next: None,
            slot: 0,
            change: 0,
        };
        db.write(move |conn| store::complete(conn, &id, 1, &rows, &models))
            .await
            .unwrap();
    }
    let indexing = started.elapsed().as_secs_f64();
    println!(
        "{label}: indexed {chunks} chunks in {indexing:.1} s: {:.0} chunks/s (embedding alone {:.0} chunks/s)",
        chunks as f64 / indexing,
        chunks as f64 / embed_secs
    );

    let ids = vec![collection.id.clone()];
    let cold = Instant::now();
    search::search(
        &state,
        search::Query {
            tenant: &collection.tenant_id,
            collections: &ids,
            text: "refund warehouse",
            mode: search::Mode::Hybrid,
            limit: 10,
            filter: None,
        },
    )
    .await
    .unwrap();
    println!(
        "{label}: first search (vectors read into the cache): {:.0} ms",
        cold.elapsed().as_secs_f64() * 1000.0
    );
    for mode in [
        search::Mode::Hybrid,
        search::Mode::Semantic,
        search::Mode::Keyword,
    ] {
        let mut times = Vec::new();
        for _ in 0..200 {
            let query: Vec<String> = (0..1 + rng.next() % 4).map(|_| rng.word()).collect();
            let query = query.join(" ");
            let t = Instant::now();
            let found = search::search(
                &state,
                search::Query {
                    tenant: &collection.tenant_id,
                    collections: &ids,
                    text: &query,
                    mode,
                    limit: 10,
                    filter: None,
                },
            )
            .await
            .unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(!found.hits.is_empty(), "{query}");
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{label}: {mode:?} search over {chunks} chunks: p50 {:.1} ms, p99 {:.1} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }

    // The collection's model changed: every chunk embedded again by the workers' turns,
    // then the slot flipped.
    let started = Instant::now();
    let (t, c) = (collection.tenant_id.clone(), collection.id.clone());
    let now = agora_shared::db::now();
    db.write(move |conn| agora_ai::knowledge::reembed::change_model(conn, &t, &c, STATIC, now))
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    loop {
        let did = agora_ai::knowledge::reembed::work(&state, &stop)
            .await
            .unwrap();
        let (t, c) = (collection.tenant_id.clone(), collection.id.clone());
        let row = db
            .read(move |conn| store::collection(conn, &t, &c))
            .await
            .unwrap();
        if row.next_embedding_model.is_none() {
            assert_eq!(row.embedding_model, STATIC);
            break;
        }
        if !did {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "{label}: re-embedded {chunks} chunks with a static model in {took:.1} s: {:.0} chunks/s",
        chunks as f64 / took
    );
}

fn main() {
    let chunks: usize = std::env::var("AGORA_BENCH_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut rng = Rng(42);
        let texts: Vec<String> = (0..20_000).map(|_| rng.sentence(40)).collect();
        let t = Instant::now();
        for text in &texts {
            std::hint::black_box(embed::embed(text));
        }
        println!(
            "embeddings: {:.0}/s ({} texts of 40 words)",
            texts.len() as f64 / t.elapsed().as_secs_f64(),
            texts.len()
        );
        // A static model over the corpus' words: 256 dimensions, random rows.
        let mut vocabulary: Vec<String> = (0..200_000).map(|_| rng.word()).collect();
        vocabulary.sort();
        vocabulary.dedup();
        let rows: Vec<(&str, Vec<f32>)> = vocabulary
            .iter()
            .map(|w| {
                let row = (0..256)
                    .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect();
                (w.as_str(), row)
            })
            .collect();
        let model = std::env::temp_dir().join(format!("agora-bench-model-{}", std::process::id()));
        agora_ai::local::static_model::write_word_model(&model, &rows, true).unwrap();
        let loaded = agora_ai::local::static_model::StaticModel::load(&model).unwrap();
        let t = Instant::now();
        for text in &texts {
            std::hint::black_box(loaded.embed(text));
        }
        println!(
            "static model embeddings ({} words, 256 dimensions): {:.0}/s",
            rows.len(),
            texts.len() as f64 / t.elapsed().as_secs_f64()
        );
        let sqlite = TestDb::sqlite();
        run(
            "sqlite",
            sqlite.migrated(agora_ai::MIGRATIONS, 4).await,
            chunks,
            &model,
        )
        .await;
        if let Ok(url) = std::env::var("AGORA_BENCH_DATABASE_URL") {
            let pg = TestDb::postgres_at(&url);
            run(
                "postgres",
                pg.migrated(agora_ai::MIGRATIONS, 4).await,
                chunks,
                &model,
            )
            .await;
        }
        std::fs::remove_dir_all(&model).ok();
        router_overhead().await;
    });
}

async fn router_overhead() {
    let fake = agora_testkit::fake_llm::FakeLlm::start("bench");
    let settings = format!(
        "[ai]\nproviders = {{ p = {{ kind = \"openai\", base_url = \"{}/v1\" }} }}\n\
         models = {{ fast = {{ deployments = [{{ provider = \"p\", model = \"m\" }}] }} }}\n",
        fake.url
    );
    let config: AiConfig = agora_shared::config::ConfigSource::from_toml(&settings)
        .section("ai")
        .unwrap();
    let router = agora_ai::router::Router::new();
    let body = serde_json::json!({"model": "fast", "messages": [{"role": "user", "content": "hello there"}]});
    let direct = reqwest::Client::new();
    let keys = std::collections::HashMap::new();
    let (mut via, mut straight) = (Vec::new(), Vec::new());
    let call = agora_ai::router::Call::Chat { stream: false };
    for i in 0..2200 {
        let t = Instant::now();
        let (reply, _) = router
            .call(&config, "fast", None, &body, call, &keys)
            .await
            .unwrap();
        let routed = t.elapsed().as_secs_f64() * 1000.0;
        assert!(matches!(reply, agora_ai::providers::Reply::Whole(_)));
        let t = Instant::now();
        let answer: serde_json::Value = direct
            .post(format!("{}/v1/chat/completions", fake.url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let plain = t.elapsed().as_secs_f64() * 1000.0;
        assert!(answer["choices"].is_array());
        // The first 200 of each warm the connections up.
        if i >= 200 {
            via.push(routed);
            straight.push(plain);
        }
    }
    via.sort_by(f64::total_cmp);
    straight.sort_by(f64::total_cmp);
    println!(
        "router: {} calls to a local fake provider: through the router p50 {:.3} ms, p99 {:.3} ms; \
         straight p50 {:.3} ms, p99 {:.3} ms; the router's overhead at the median {:.3} ms",
        via.len(),
        percentile(&via, 0.5),
        percentile(&via, 0.99),
        percentile(&straight, 0.5),
        percentile(&straight, 0.99),
        percentile(&via, 0.5) - percentile(&straight, 0.5)
    );
}
