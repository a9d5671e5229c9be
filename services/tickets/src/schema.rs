//! Diesel table definitions of the tickets store (the outbox and inbox come from the kernel).

diesel::table! {
    ticket_counters (tenant_id) {
        tenant_id -> Text,
        last_number -> BigInt,
    }
}

diesel::table! {
    zones (tenant_id, name) {
        tenant_id -> Text,
        name -> Text,
        position -> Integer,
    }
}

diesel::table! {
    tickets (id) {
        id -> Text,
        tenant_id -> Text,
        number -> BigInt,
        title -> Text,
        description -> Text,
        category -> Text,
        priority -> Text,
        priority_rank -> Integer,
        status -> Text,
        location -> Nullable<Text>,
        zone -> Nullable<Text>,
        latitude -> Nullable<Double>,
        longitude -> Nullable<Double>,
        customer_name -> Nullable<Text>,
        customer_contact -> Nullable<Text>,
        team_id -> Nullable<Text>,
        assignee_id -> Nullable<Text>,
        sla_override -> Nullable<Integer>,
        due_at -> Timestamp,
        at_risk_at -> Timestamp,
        paused_secs -> BigInt,
        clock_stopped_at -> Nullable<Timestamp>,
        estimated_duration_minutes -> Nullable<Integer>,
        progress -> Integer,
        completed_at -> Nullable<Timestamp>,
        tags -> Text,
        breach_notified_at -> Nullable<Timestamp>,
        version -> BigInt,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    assignments (id) {
        id -> Text,
        tenant_id -> Text,
        ticket_id -> Text,
        team_id -> Text,
        user_id -> Nullable<Text>,
        note -> Text,
        over_capacity -> Bool,
        assigned_by -> Text,
        assigned_at -> Timestamp,
    }
}

diesel::table! {
    comments (id) {
        id -> Text,
        tenant_id -> Text,
        ticket_id -> Text,
        author_id -> Text,
        body -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(assignments -> tickets (ticket_id));
diesel::joinable!(comments -> tickets (ticket_id));
diesel::allow_tables_to_appear_in_same_query!(tickets, assignments, comments);
