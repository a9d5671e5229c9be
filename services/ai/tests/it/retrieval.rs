//! Retrieval quality: a 300-chunk corpus built here (60 documents of 5 sections, one
//! organisation each) and 30 questions, each about one chunk: by name and paraphrase, by
//! facts alone (no name), and by a misspelt name (the keyword index knows no such word). Hybrid search must rank the chunk asked
//! about first for every question; recall@1 and @5 of each mode are printed.

use serde_json::json;

use agora_shared::testing::Store;

use crate::support::platform;

const FIRST: [&str; 10] = [
    "Vor", "Kel", "Dra", "Mi", "Sol", "Tar", "Bex", "Lun", "Quo", "Zel",
];
const SECOND: [&str; 6] = ["an", "ith", "or", "ux", "en", "ia"];
const THIRD: [&str; 5] = ["dale", "mont", "wick", "ford", "stead"];
const KINDS: [&str; 10] = [
    "bakery", "clinic", "garage", "school", "hotel", "library", "museum", "pharmacy", "gym",
    "florist",
];
const CITIES: [&str; 10] = [
    "Lyon", "Porto", "Gdansk", "Quito", "Osaka", "Perth", "Tunis", "Leeds", "Bergen", "Cusco",
];
const FOUNDERS: [&str; 7] = [
    "Amelia", "Bruno", "Chiara", "Dmitri", "Esther", "Farid", "Greta",
];
const PRODUCTS: [&str; 9] = [
    "sourdough bread",
    "night shifts",
    "electric cars",
    "chess lessons",
    "rooftop pool",
    "rare maps",
    "bronze statues",
    "herbal remedies",
    "climbing walls",
];

struct Org {
    name: String,
    kind: &'static str,
    city: &'static str,
    year: usize,
    founder: &'static str,
    product: &'static str,
}

fn orgs() -> Vec<Org> {
    (0..300)
        .map(|i| Org {
            name: format!("{}{}{}", FIRST[i % 10], SECOND[(i / 10) % 6], THIRD[i / 60]),
            kind: KINDS[(i * 7) % 10],
            city: CITIES[(i * 3 + i / 10) % 10],
            year: 1700 + i,
            founder: FOUNDERS[i % 7],
            product: PRODUCTS[(i * 5) % 9],
        })
        .collect()
}

fn section(o: &Org) -> String {
    format!(
        "## {name}\n\n{name} is a {kind} in {city}, founded in {year} by {founder}. \
         It is best known for its {product}. Regular customers praise the friendly staff \
         and the opening hours.\n\n",
        name = o.name,
        kind = o.kind,
        city = o.city,
        year = o.year,
        founder = o.founder,
        product = o.product,
    )
}

/// The 30 questions: (question, index of the organisation asked about).
fn questions(orgs: &[Org]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for k in 0..10 {
        let i = k * 29 + 3;
        out.push((format!("In which city can I find {}?", orgs[i].name), i));
    }
    for k in 0..10 {
        let i = k * 31 + 7;
        let o = &orgs[i];
        out.push((format!("Which {} was started in {}?", o.kind, o.year), i));
    }
    for k in 0..10 {
        let i = k * 23 + 11;
        let name = &orgs[i].name;
        // A letter typed twice in the middle of the name.
        let typo: String = name
            .chars()
            .enumerate()
            .flat_map(|(n, c)| std::iter::repeat_n(c, if n == 4 { 2 } else { 1 }))
            .collect();
        out.push((format!("what is {typo} famous for"), i));
    }
    out
}

async fn hybrid_search_finds_the_chunk_asked_about(store: Store) {
    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let c = p.collection(&admin, "Directory").await;
    let orgs = orgs();
    let mut chunk_count = 0;
    for (d, group) in orgs.chunks(5).enumerate() {
        let text = format!(
            "# Directory, part {}\n\n{}",
            d + 1,
            group.iter().map(section).collect::<String>()
        );
        let doc = p
            .text(&admin, &c, &format!("Directory {}", d + 1), &text)
            .await;
        chunk_count += doc["chunk_count"].as_i64().unwrap();
    }
    assert_eq!(chunk_count, 300);

    let questions = questions(&orgs);
    let mut report = Vec::new();
    for mode in ["hybrid", "semantic", "keyword"] {
        let (mut at1, mut at5) = (0, 0);
        let mut misses = Vec::new();
        for (question, i) in &questions {
            let items = p.search(&admin, &[&c], question, mode).await;
            let heading_of =
                |item: &serde_json::Value| item["heading"].as_str().unwrap_or_default().to_owned();
            let position = items
                .iter()
                .take(5)
                .position(|item| heading_of(item).ends_with(&orgs[*i].name));
            match position {
                Some(0) => {
                    at1 += 1;
                    at5 += 1;
                }
                Some(_) => at5 += 1,
                None => {}
            }
            if position != Some(0) {
                misses.push(format!("{question} -> {:?}", items.first().map(heading_of)));
            }
        }
        report.push(format!("{mode}: recall@1 {at1}/30, recall@5 {at5}/30"));
        if mode == "hybrid" {
            assert_eq!(at1, 30, "hybrid misses: {misses:#?}");
        }
    }
    eprintln!(
        "retrieval over 300 chunks, 30 questions: {}",
        report.join("; ")
    );

    // Metadata filters: only documents whose metadata matches.
    let tagged = p.collection(&admin, "Tagged").await;
    for (lang, text) in [
        ("en", "The library opens at nine."),
        ("fr", "La bibliothèque ouvre à neuf heures."),
    ] {
        let (status, _) = p
            .post_as(
                &admin,
                &format!("/api/v1/ai/collections/{tagged}/documents"),
                json!({"title": lang, "text": text, "metadata": {"lang": lang}}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (_, body) = p
        .post_as(
            &admin,
            "/api/v1/ai/search",
            json!({"collection_ids": [tagged], "query": "library bibliothèque opens ouvre", "filter": {"lang": "fr"}}),
        )
        .await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert!(
        items[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("La bibliothèque")
    );
}

crate::on_every_store!(hybrid_search_finds_the_chunk_asked_about);
