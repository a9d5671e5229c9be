//! Claims: one per discrepancy (a unique index), status moved only from the status it was read
//! in.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::{
    domain::{ClaimProvider, ClaimStatus, ClaimType},
    schema::claims,
};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = claims, treat_none_as_null = true)]
pub struct ClaimRow {
    pub id: String,
    pub tenant_id: String,
    pub discrepancy_id: String,
    pub item_id: String,
    pub sku: String,
    pub claim_type: ClaimType,
    pub provider: ClaimProvider,
    pub status: ClaimStatus,
    pub amount: i64,
    pub currency: String,
    pub confidence: f64,
    /// JSON array of evidence entries.
    pub evidence: String,
    pub notes: Option<String>,
    pub external_reference: Option<String>,
    pub version: i64,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Stripe claims: the connection they act through (null once it is removed). Set when
    /// the claim is made, never by a save (a disconnect's SET NULL is not written back).
    #[diesel(skip_update)]
    pub connection_id: Option<String>,
    /// Stripe claims: the payment intent, charge or dispute they act on.
    #[diesel(skip_update)]
    pub stripe_target: Option<String>,
    /// Stripe's refusals of its submits so far (part of the Idempotency-Key).
    #[diesel(skip_update)]
    pub stripe_attempt: i64,
}

/// Inserts the claim; false when the discrepancy already has one.
pub fn insert(conn: &mut DbConnection, row: &ClaimRow) -> AppResult<bool> {
    let n = agora_shared::on_each_backend!(conn, c => diesel::insert_into(claims::table)
        .values(row)
        .on_conflict(claims::discrepancy_id)
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<Option<ClaimRow>> {
    Ok(claims::table
        .filter(claims::tenant_id.eq(tenant_id))
        .filter(claims::id.eq(id))
        .select(ClaimRow::as_select())
        .first(conn)
        .optional()?)
}

/// Writes `row` (at the next version) over the stored claim if that is still at `row`'s
/// version; false when another change came first. `row.version` moves on when written.
pub fn save(conn: &mut DbConnection, row: &mut ClaimRow) -> AppResult<bool> {
    let read = row.version;
    row.version += 1;
    let n = diesel::update(
        claims::table
            .filter(claims::id.eq(&row.id))
            .filter(claims::version.eq(read)),
    )
    .set(&*row)
    .execute(conn)?;
    if n != 1 {
        row.version = read;
    }
    Ok(n == 1)
}

/// The tenant's claims, newest first, before id `before`.
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    status: Option<ClaimStatus>,
    before: Option<&str>,
    limit: i64,
) -> AppResult<Vec<ClaimRow>> {
    let mut query = claims::table
        .filter(claims::tenant_id.eq(tenant_id))
        .order(claims::id.desc())
        .select(ClaimRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(claims::id.lt(before.to_owned()));
    }
    if let Some(status) = status {
        query = query.filter(claims::status.eq(status));
    }
    Ok(query.load(conn)?)
}

/// The Stripe claim of connection `connection_id` that a refund or dispute event is about:
/// the refund claim whose external reference is refund `object_id` (or else, still unfiled,
/// claim `claim_id`: the metadata Agora set on the refund), or the dispute claim of dispute
/// `object_id`.
pub fn for_stripe_object(
    conn: &mut DbConnection,
    tenant_id: &str,
    connection_id: &str,
    claim_type: ClaimType,
    object_id: &str,
    claim_id: Option<&str>,
) -> AppResult<Option<ClaimRow>> {
    let ours = || {
        claims::table
            .filter(claims::tenant_id.eq(tenant_id))
            .filter(claims::connection_id.eq(connection_id))
            .filter(claims::provider.eq(ClaimProvider::Stripe))
            .filter(claims::claim_type.eq(claim_type))
            .order(claims::id.asc())
            .select(ClaimRow::as_select())
    };
    if claim_type == ClaimType::Dispute {
        return Ok(ours()
            .filter(claims::stripe_target.eq(object_id))
            .first(conn)
            .optional()?);
    }
    let filed = ours()
        .filter(claims::external_reference.eq(object_id))
        .first(conn)
        .optional()?;
    if filed.is_some() {
        return Ok(filed);
    }
    let Some(claim_id) = claim_id else {
        return Ok(None);
    };
    Ok(ours()
        .filter(claims::id.eq(claim_id))
        .filter(claims::external_reference.is_null())
        .first(conn)
        .optional()?)
}

/// Counts a refusal of the claim's submit by Stripe: the next submit is a new request.
pub fn refused_by_stripe(conn: &mut DbConnection, id: &str, attempt: i64) -> AppResult<()> {
    diesel::update(
        claims::table
            .filter(claims::id.eq(id))
            .filter(claims::stripe_attempt.eq(attempt)),
    )
    .set(claims::stripe_attempt.eq(attempt + 1))
    .execute(conn)?;
    Ok(())
}

/// Whether the tenant has a claim on dispute `dispute_id`.
pub fn dispute_claimed(
    conn: &mut DbConnection,
    tenant_id: &str,
    dispute_id: &str,
) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        claims::table
            .filter(claims::tenant_id.eq(tenant_id))
            .filter(claims::claim_type.eq(ClaimType::Dispute))
            .filter(claims::stripe_target.eq(dispute_id)),
    ))
    .get_result(conn)?)
}

/// Stripe claims of the connection filed and waiting for Stripe's news (processing or
/// approved): its webhooks settle them.
pub fn open_on_connection(conn: &mut DbConnection, connection_id: &str) -> AppResult<i64> {
    Ok(claims::table
        .filter(claims::connection_id.eq(connection_id))
        .filter(claims::status.eq_any([ClaimStatus::Processing, ClaimStatus::Approved]))
        .count()
        .get_result(conn)?)
}

/// Whether the item has any claim.
pub fn for_item(conn: &mut DbConnection, item_id: &str) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        claims::table.filter(claims::item_id.eq(item_id)),
    ))
    .get_result(conn)?)
}
