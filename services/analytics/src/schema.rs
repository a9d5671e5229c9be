//! Diesel table definitions (kept by hand, matching `migrations/`).

diesel::table! {
    ticket_facts (tenant_id, ticket_id) {
        tenant_id -> Text,
        ticket_id -> Text,
        number -> Text,
        category -> Text,
        priority -> Text,
        status -> Text,
        zone -> Text,
        team_id -> Text,
        created_at -> Timestamp,
        created_day -> Text,
        due_at -> Timestamp,
        completed_at -> Nullable<Timestamp>,
        first_assigned_at -> Nullable<Timestamp>,
        breached -> Bool,
        deleted -> Bool,
        version -> BigInt,
    }
}

diesel::table! {
    rollups (tenant_id, grain, bucket, zone, team_id, category, priority) {
        tenant_id -> Text,
        grain -> Text,
        bucket -> Text,
        zone -> Text,
        team_id -> Text,
        category -> Text,
        priority -> Text,
        created -> BigInt,
        completed -> BigInt,
        completed_in_sla -> BigInt,
        completion_secs -> BigInt,
        breached -> BigInt,
        assigned -> BigInt,
        assign_secs -> BigInt,
    }
}

diesel::table! {
    activities (id) {
        id -> Text,
        tenant_id -> Text,
        event_type -> Text,
        source -> Text,
        subject -> Text,
        summary -> Text,
        occurred_at -> Timestamp,
    }
}

diesel::table! {
    plan_factors (tenant_id) {
        tenant_id -> Text,
        team_divisor -> Double,
        hours_per_ticket -> Double,
        tickets_per_vehicle -> Double,
        fibre_metres_per_ticket -> Double,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    backfills (name) {
        name -> Text,
        completed_at -> Timestamp,
        tickets -> BigInt,
    }
}

diesel::table! {
    inventory_discrepancies (id) {
        id -> Text,
        tenant_id -> Text,
        sku -> Text,
        source -> Text,
        severity -> Text,
        status -> Text,
        value_at_stake -> BigInt,
        currency -> Text,
        detected_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        version -> BigInt,
        as_of -> Timestamp,
    }
}

diesel::table! {
    inventory_claims (id) {
        id -> Text,
        tenant_id -> Text,
        claim_type -> Text,
        provider -> Text,
        status -> Text,
        amount -> BigInt,
        currency -> Text,
        created_at -> Timestamp,
        settled_at -> Nullable<Timestamp>,
        version -> BigInt,
        as_of -> Timestamp,
    }
}

diesel::table! {
    code_runs (id) {
        id -> Text,
        tenant_id -> Text,
        kind -> Text,
        language_id -> Integer,
        language -> Text,
        status_id -> Integer,
        accepted -> Bool,
        cpu_time -> Double,
        exercise_id -> Text,
        score -> Integer,
        max_score -> Integer,
        finished_at -> Timestamp,
    }
}
