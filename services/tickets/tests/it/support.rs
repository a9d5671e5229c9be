//! The platform test kit with auth, tickets (SLA watch every second) and the gateway, plus what
//! only tickets' tests need.

use std::{ops::Deref, sync::Arc};

use diesel::prelude::*;
use tokio_util::sync::CancellationToken;

use agora_shared::{bus::Event, testing::Store};
use agora_tickets::{TicketsState, schema::tickets, store::tickets::TicketRow};

pub use agora_testkit::{Session, fields, secs_from_now};

pub struct Platform {
    kit: agora_testkit::Platform,
    pub state: Arc<TicketsState>,
    pub tickets_grpc: String,
    /// Stops the tickets service alone (auth and the gateway keep running).
    pub tickets_shutdown: CancellationToken,
}

impl Deref for Platform {
    type Target = agora_testkit::Platform;
    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

pub async fn platform(store: Store) -> Platform {
    platform_on(store, None).await
}

/// The same, publishing through `bus` instead of an in-process bus.
pub async fn platform_on(store: Store, bus: Option<agora_shared::bus::SharedBus>) -> Platform {
    let mut kit = agora_testkit::Platform::builder(store).service("tickets", "sla_check_secs = 1");
    if let Some(bus) = bus {
        kit = kit.bus(bus);
    }
    let mut kit = kit.start().await;
    let tickets_shutdown = kit.shutdown.child_token();
    let tickets = agora_tickets::start(&kit.context(), tickets_shutdown.clone())
        .await
        .expect("tickets starts");
    let tickets_grpc = format!("http://{}", tickets.service.grpc_addr.expect("grpc"));
    let state = tickets.state.clone();
    kit.serve(tickets.service);
    kit.gateway().await;
    Platform {
        kit,
        state,
        tickets_grpc,
        tickets_shutdown,
    }
}

impl Platform {
    /// Every event of `event_type` on the tickets topic so far.
    pub async fn events_of(&self, event_type: &str) -> Vec<Event> {
        self.kit
            .events_of(&self.state.db, "agora.tickets.events", event_type)
            .await
    }

    /// Moves ticket `id` `hours` into the past: every stored time of it shifts back, as if that
    /// much time had passed.
    pub async fn age(&self, id: &str, hours: i64) {
        let id = id.to_owned();
        let shift = chrono::Duration::hours(hours);
        let aged = move |conn: &mut _| {
            let t = tickets::table.find(&id);
            let mut row: TicketRow = t.select(TicketRow::as_select()).first(conn)?;
            for time in [
                &mut row.created_at,
                &mut row.due_at,
                &mut row.at_risk_at,
                &mut row.updated_at,
            ] {
                *time -= shift;
            }
            for time in [&mut row.clock_stopped_at, &mut row.completed_at]
                .into_iter()
                .flatten()
            {
                *time -= shift;
            }
            diesel::update(t).set(&row).execute(conn)?;
            Ok(())
        };
        self.state.db.write(aged).await.expect("age ticket");
    }
}
