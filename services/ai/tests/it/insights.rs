//! Field-force insights from analytics: zones at risk and the SLA trend reflect tickets made
//! through the gateway (analytics hears them on the bus), for the caller's tenant only.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store};

use crate::support::with_analytics;

async fn insights_reflect_the_tenants_tickets(store: Store) {
    let p = with_analytics(store).await;
    let admin = p.tenant("Acme").await;
    let globex = p.tenant("Globex").await;
    for (zone, priority) in [
        ("Northern", "URGENT"),
        ("Northern", "URGENT"),
        ("Central", "LOW"),
    ] {
        p.ticket(
            &admin,
            json!({"title": "work", "category": "REPAIR", "zone": zone, "priority": priority}),
        )
        .await;
    }
    let done = p
        .ticket(
            &admin,
            json!({"title": "done", "category": "REPAIR", "zone": "Southern"}),
        )
        .await;
    let path = format!("/api/v1/tickets/{}", done["id"].as_str().unwrap());
    for status in ["IN_PROGRESS", "COMPLETED"] {
        let resp = p
            .authed(Method::PATCH, &path, &admin)
            .json(&json!({"status": status}))
            .call()
            .await;
        assert_eq!(resp.status(), 200);
    }
    // Globex's urgent ticket is never Acme's insight.
    p.ticket(
        &globex,
        json!({"title": "theirs", "category": "REPAIR", "zone": "Borneo", "priority": "URGENT"}),
    )
    .await;

    let insights: Value = agora_testkit::eventually(
        Duration::from_secs(20),
        "analytics hears the tickets",
        || async {
            let v = p
                .authed(Method::GET, "/api/v1/ai/insights", &admin)
                .value()
                .await;
            match v["sla"]["this_week"]["completed"] == 1
                && v["zones_at_risk"][0]["urgent_open"] == 2
            {
                true => Ok(v),
                false => Err(v.to_string()),
            }
        },
    )
    .await;
    let zones = insights["zones_at_risk"].as_array().unwrap();
    assert_eq!(zones.len(), 1, "{insights}");
    assert_eq!(zones[0]["zone"], "Northern");
    assert_eq!(zones[0]["open"], 2);
    assert_eq!(insights["sla"]["this_week"]["sla_compliance_pct"], 100.0);
    assert_eq!(insights["sla"]["trend"], "unknown");
    assert_eq!(insights["provider"], "local");
    let highlights: Vec<&str> = insights["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(
        highlights[0],
        "Northern: 0 overdue and 2 urgent of 2 open tickets."
    );
    // The next week from analytics' forecast and plan: no history yet, so only what is open.
    let northern = &insights["outlook"][0];
    assert_eq!(
        (northern["zone"].as_str(), northern["open"].as_i64()),
        (Some("Northern"), Some(2)),
        "{insights}"
    );
    assert!(northern["teams"].as_i64().unwrap() >= 1);
    assert!(
        highlights[1].starts_with("Next 7 days: Northern expects"),
        "{highlights:?}"
    );
    assert!(
        highlights[2].starts_with("SLA compliance is 100% this week"),
        "{highlights:?}"
    );
    assert!(!insights.to_string().contains("Borneo"));

    let theirs: Value =
        agora_testkit::eventually(Duration::from_secs(20), "Globex's insights", || async {
            let v = p
                .authed(Method::GET, "/api/v1/ai/insights", &globex)
                .value()
                .await;
            match v["zones_at_risk"][0]["zone"] == "Borneo" {
                true => Ok(v),
                false => Err(v.to_string()),
            }
        })
        .await;
    assert_eq!(
        theirs["zones_at_risk"].as_array().unwrap().len(),
        1,
        "{theirs}"
    );
    assert_eq!(theirs["sla"]["this_week"]["completed"], 0);
}

crate::on_every_store!(insights_reflect_the_tenants_tickets);
