//! A small builder for SQL whose shape is decided at run time (grouping columns, nested
//! filters). Column names come only from fixed lists in the code; every value is bound. The
//! same text runs on both backends: placeholders are rendered as `$n` or `?`.

use chrono::NaiveDateTime;
use diesel::{
    pg::Pg,
    query_dsl::RunQueryDsl,
    sql_types::{BigInt, Bool, Double, Nullable, Text, Timestamp},
    sqlite::Sqlite,
};

use agora_shared::{AppResult, db::DbConnection};

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Time(NaiveDateTime),
    Int(i64),
    Float(f64),
    Bool(bool),
    MaybeTime(Option<NaiveDateTime>),
}

/// SQL text with its values in order.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    binds: Vec<Value>,
}

/// Stands for a placeholder until rendering (never appears in SQL we write).
const MARK: char = '\u{1}';

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            binds: Vec::new(),
        }
    }

    /// Appends SQL text (never user input).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: Value) -> &mut Self {
        self.text.push(MARK);
        self.binds.push(value);
        self
    }

    /// Binds `value` to a placeholder written into the text by hand (`\u{1}`) before any
    /// other placeholder.
    pub fn prepend_bind(&mut self, value: Value) -> &mut Self {
        self.binds.insert(0, value);
        self
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bind(Value::Text(value.to_owned()))
    }

    /// Appends `(?, ?, ...)` bound to `values`.
    pub fn list(&mut self, values: &[String]) -> &mut Self {
        self.push("(");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(v);
        }
        self.push(")")
    }

    fn render(&self, postgres: bool) -> String {
        let mut out = String::with_capacity(self.text.len() + 8);
        let mut n = 0;
        for c in self.text.chars() {
            if c == MARK {
                n += 1;
                if postgres {
                    out.push_str(&format!("${n}"));
                } else {
                    out.push('?');
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn boxed<'a, DB>(
        &self,
        postgres: bool,
    ) -> diesel::query_builder::BoxedSqlQuery<'a, DB, diesel::query_builder::SqlQuery>
    where
        DB: diesel::backend::Backend
            + diesel::sql_types::HasSqlType<Text>
            + diesel::sql_types::HasSqlType<Timestamp>
            + diesel::sql_types::HasSqlType<BigInt>
            + diesel::sql_types::HasSqlType<Double>
            + diesel::sql_types::HasSqlType<Bool>,
        String: diesel::serialize::ToSql<Text, DB>,
        NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
        i64: diesel::serialize::ToSql<BigInt, DB>,
        f64: diesel::serialize::ToSql<Double, DB>,
        bool: diesel::serialize::ToSql<Bool, DB>,
    {
        let mut query = diesel::sql_query(self.render(postgres)).into_boxed::<DB>();
        for value in &self.binds {
            query = match value.clone() {
                Value::Text(v) => query.bind::<Text, _>(v),
                Value::Time(v) => query.bind::<Timestamp, _>(v),
                Value::Int(v) => query.bind::<BigInt, _>(v),
                Value::Float(v) => query.bind::<Double, _>(v),
                Value::Bool(v) => query.bind::<Bool, _>(v),
                Value::MaybeTime(v) => query.bind::<Nullable<Timestamp>, _>(v),
            };
        }
        query
    }

    /// Runs a query and reads its rows.
    pub fn load<T>(&self, conn: &mut DbConnection) -> AppResult<Vec<T>>
    where
        T: diesel::QueryableByName<Pg> + diesel::QueryableByName<Sqlite> + 'static,
    {
        Ok(match conn {
            DbConnection::Postgres(pg) => self.boxed::<Pg>(true).load(pg)?,
            DbConnection::Sqlite(lite) => self.boxed::<Sqlite>(false).load(lite)?,
        })
    }

    /// Runs a statement; returns the rows it touched.
    pub fn execute(&self, conn: &mut DbConnection) -> AppResult<usize> {
        Ok(match conn {
            DbConnection::Postgres(pg) => self.boxed::<Pg>(true).execute(pg)?,
            DbConnection::Sqlite(lite) => self.boxed::<Sqlite>(false).execute(lite)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_per_backend() {
        let mut sql = Sql::new("SELECT 1 WHERE a = ");
        sql.text("x")
            .push(" AND b IN ")
            .list(&["1".into(), "2".into()]);
        assert_eq!(sql.render(true), "SELECT 1 WHERE a = $1 AND b IN ($2, $3)");
        assert_eq!(sql.render(false), "SELECT 1 WHERE a = ? AND b IN (?, ?)");
        assert_eq!(sql.binds.len(), 3);
    }
}
