//! JSON values stored as text on both backends (`Json<Vec<String>>` for a list of tags,
//! skills or permissions). A stored value that is not valid JSON of the type fails the read with
//! an error naming the type, never a silent default.

use std::{fmt::Debug, io::Write};

use diesel::{
    deserialize::{self, FromSql},
    pg::{Pg, PgValue},
    serialize::{self, IsNull, Output, ToSql},
    sql_types::Text,
    sqlite::{Sqlite, SqliteValue},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{MultiBackend, MultiRawValue};

/// A value of `T` in a text column, as JSON.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = Text)]
pub struct Json<T: Debug>(pub T);

impl<T: Serialize + Debug> ToSql<Text, Pg> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        serde_json::to_writer(&mut *out, &self.0)?;
        out.flush()?;
        Ok(IsNull::No)
    }
}

impl<T: Serialize + Debug> ToSql<Text, Sqlite> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl<T: Serialize + Debug + Send + Sync + 'static> ToSql<Text, MultiBackend> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Text, self));
        Ok(IsNull::No)
    }
}

fn parse<T: DeserializeOwned + Debug>(text: &str) -> deserialize::Result<Json<T>> {
    serde_json::from_str(text).map(Json).map_err(|e| {
        let kind = std::any::type_name::<T>();
        format!("corrupt stored JSON of {kind}: {e}").into()
    })
}

impl<T: DeserializeOwned + Debug> FromSql<Text, Pg> for Json<T> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        parse(&<String as FromSql<Text, Pg>>::from_sql(value)?)
    }
}

impl<T: DeserializeOwned + Debug> FromSql<Text, Sqlite> for Json<T> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        parse(&<String as FromSql<Text, Sqlite>>::from_sql(value)?)
    }
}

impl<T: DeserializeOwned + Debug> FromSql<Text, MultiBackend> for Json<T> {
    fn from_sql(value: MultiRawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Self, Text>()
    }
}

#[cfg(test)]
mod tests {
    use diesel::{prelude::*, sql_query, sql_types::Text};

    use super::Json;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        v: Json<Vec<String>>,
    }

    #[test]
    fn a_list_round_trips_and_a_corrupt_one_is_an_error() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let row: Row = sql_query("SELECT ? AS v")
            .bind::<Text, _>(Json(vec!["a".to_owned(), "b\"c".to_owned()]))
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(row.v.0, ["a", "b\"c"]);
        let corrupt = sql_query("SELECT 'not json' AS v").get_result::<Row>(&mut conn);
        let err = corrupt
            .err()
            .expect("a corrupt value is an error")
            .to_string();
        assert!(err.contains("corrupt stored JSON"), "{err}");
    }
}
