//! CSV import of items: a header row naming any of the item's fields (`sku` is required), one
//! item per row. The whole file is checked first; one bad row refuses the file with every
//! problem named by line and column, and nothing is written.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use validator::Validate;

use agora_shared::{AppError, AppResult, FieldError, db::DbConnection};

use crate::{
    model::{ImportReport, ItemFields},
    schema::items,
    stock,
    store::{self, items::ItemRow},
};

/// Columns an import may have.
pub const COLUMNS: &[&str] = &[
    "sku",
    "name",
    "asin",
    "fnsku",
    "on_hand",
    "fulfillable",
    "inbound",
    "reserved",
    "unfulfillable",
    "unit_price",
    "currency",
    "reorder_point",
    "reorder_quantity",
];

/// Rows in one file at most.
pub const MAX_ROWS: usize = 100_000;
/// Problems reported at most (the rest are counted).
const MAX_PROBLEMS: usize = 50;

/// One parsed row and its 1-based line in the file.
#[derive(Debug)]
pub struct Row {
    pub line: u64,
    pub fields: ItemFields,
}

fn number(value: &str) -> Result<i64, String> {
    value
        .parse::<i64>()
        .map_err(|_| format!("`{value}` is not a whole number"))
}

/// Parses and checks `body`; every problem is a field error `line N: column`.
pub fn parse(body: &[u8]) -> AppResult<Vec<Row>> {
    let text = std::str::from_utf8(body)
        .map_err(|e| AppError::BadRequest(format!("the file is not UTF-8 text ({e})")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| AppError::BadRequest(format!("the header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut problems = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if !COLUMNS.contains(&h.as_str()) {
            problems.push(FieldError::new(
                format!("column {}", i + 1),
                format!(
                    "`{h}` is not a column; the columns are {}",
                    COLUMNS.join(", ")
                ),
            ));
        } else if headers[..i].contains(h) {
            problems.push(FieldError::new(
                format!("column {}", i + 1),
                format!("`{h}` appears twice"),
            ));
        }
    }
    if !headers.iter().any(|h| h == "sku") {
        problems.push(FieldError::new("header", "a `sku` column is required"));
    }
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    let mut rows = Vec::new();
    let mut skus = HashSet::new();
    let mut extra = 0usize;
    let mut problem = |problems: &mut Vec<FieldError>, field: String, message: String| {
        if problems.len() < MAX_PROBLEMS {
            problems.push(FieldError::new(field, message));
        } else {
            extra += 1;
        }
    };
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problem(&mut problems, format!("line {line}"), e.to_string());
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if rows.len() >= MAX_ROWS {
            return Err(AppError::PayloadTooLarge(format!(
                "an import holds at most {MAX_ROWS} rows"
            )));
        }
        let mut fields = ItemFields::default();
        for (column, value) in headers.iter().zip(record.iter()) {
            if value.is_empty() {
                continue;
            }
            let text = Some(value.to_owned());
            let slot = match column.as_str() {
                "sku" => &mut fields.sku,
                "name" => &mut fields.name,
                "currency" => &mut fields.currency,
                "asin" => {
                    fields.asin = Some(text);
                    continue;
                }
                "fnsku" => {
                    fields.fnsku = Some(text);
                    continue;
                }
                _ => {
                    let slot = match column.as_str() {
                        "on_hand" => &mut fields.on_hand,
                        "fulfillable" => &mut fields.fulfillable,
                        "inbound" => &mut fields.inbound,
                        "reserved" => &mut fields.reserved,
                        "unfulfillable" => &mut fields.unfulfillable,
                        "unit_price" => &mut fields.unit_price,
                        "reorder_point" => &mut fields.reorder_point,
                        _ => &mut fields.reorder_quantity,
                    };
                    let parsed = number(value).map(|n| *slot = Some(n));
                    if let Err(message) = parsed {
                        problem(&mut problems, format!("line {line}: {column}"), message);
                    }
                    continue;
                }
            };
            *slot = text;
        }
        if let Err(errors) = fields.validate() {
            for error in agora_shared::http::json::field_errors(&errors) {
                problem(
                    &mut problems,
                    format!("line {line}: {}", error.field),
                    error.message,
                );
            }
        }
        match &fields.sku {
            None => problem(
                &mut problems,
                format!("line {line}: sku"),
                "is required".into(),
            ),
            Some(sku) if !skus.insert(sku.clone()) => problem(
                &mut problems,
                format!("line {line}: sku"),
                format!("{sku} appears on an earlier line"),
            ),
            Some(_) => {}
        }
        rows.push(Row { line, fields });
    }
    if extra > 0 {
        problems.push(FieldError::new(
            "file",
            format!("{extra} more problem(s) not listed"),
        ));
    }
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    if rows.is_empty() {
        return Err(AppError::invalid("file", "holds no rows"));
    }
    Ok(rows)
}

/// Applies checked rows in the caller's transaction: new SKUs are created (the name defaults
/// to the SKU), known ones updated; on-hand changes are audited as `import`.
pub fn apply(
    conn: &mut DbConnection,
    tenant_id: &str,
    rows: &[Row],
    default_currency: &str,
    actor: &str,
    at: NaiveDateTime,
) -> AppResult<ImportReport> {
    let mut known: HashMap<String, ItemRow> = items::table
        .filter(items::tenant_id.eq(tenant_id))
        .select(ItemRow::as_select())
        .load::<ItemRow>(conn)?
        .into_iter()
        .map(|i| (i.sku.clone(), i))
        .collect();
    let mut report = ImportReport::default();
    for row in rows {
        let sku = row.fields.sku.clone().unwrap_or_default();
        match known.remove(&sku) {
            Some(mut item) => {
                let from = item.on_hand;
                if !stock::apply(&mut item, &row.fields) {
                    report.unchanged += 1;
                    continue;
                }
                item.version += 1;
                item.updated_at = at;
                if !store::items::update(conn, &item)? {
                    return Err(AppError::Conflict(format!(
                        "item {sku} (line {}) changed during the import; import again",
                        row.line
                    )));
                }
                if item.on_hand != from {
                    stock::audit(conn, &item, from, "import", actor, at)?;
                    crate::events::quantity_changed(conn, &item, from, "import", actor)?;
                }
                report.updated += 1;
            }
            None => {
                let mut fields = row.fields.clone();
                fields.name.get_or_insert_with(|| sku.clone());
                let item = stock::new_item(tenant_id, &fields, default_currency, at)?;
                stock::create(conn, &item, "import", actor)?;
                report.created += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(body: &str) -> Vec<String> {
        match parse(body.as_bytes()) {
            Err(AppError::Validation(errors)) => errors
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn parses_rows_and_skips_empty_cells() {
        let rows =
            parse(b"\xef\xbb\xbfSKU,name,on_hand,unit_price\nA-1, Mug ,12,450\nB-2,,3,\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].fields.name.as_deref(), Some("Mug"));
        assert_eq!(rows[0].fields.unit_price, Some(450));
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].fields.name, None);
    }

    #[test]
    fn names_every_problem_by_line() {
        let found = problems("sku,on_hand,colour\nA,1,red\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("`colour` is not a column"), "{found:?}");
        let found = problems("sku,on_hand,currency\nA,x,USD\n,2,USD\nA,-1,usd\n");
        assert!(
            found.contains(&"line 2: on_hand: `x` is not a whole number".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(&"line 3: sku: is required".to_owned()),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.starts_with("line 4: on_hand")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.starts_with("line 4: currency")),
            "{found:?}"
        );
        assert!(
            found.contains(&"line 4: sku: A appears on an earlier line".to_owned()),
            "{found:?}"
        );
        assert!(problems("name\nx\n")[0].contains("`sku` column is required"));
        assert!(problems("sku\n")[0].contains("holds no rows"));
    }

    #[test]
    fn a_ragged_row_is_a_problem_not_a_panic() {
        let found = problems("sku,on_hand\nA,1,2\n");
        assert!(found[0].starts_with("line 2"), "{found:?}");
    }
}
