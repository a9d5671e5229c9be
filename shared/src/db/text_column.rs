//! Closed sets (roles, statuses, priorities, categories) stored as text on both backends: a
//! type with `as_str() -> &'static str` and `FromStr` becomes a column type with
//! [`text_column!`]. A stored value outside the set fails the read with an error that names the
//! type and the value (logged once as an internal error), never a silent default.

/// Maps `$t` to Diesel's `Text` on PostgreSQL, SQLite and the multi-backend connection. `$t`
/// must derive `diesel::AsExpression` and `diesel::FromSqlRow` with `#[diesel(sql_type =
/// diesel::sql_types::Text)]`.
#[macro_export]
macro_rules! text_column {
    ($t:ty) => {
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $t {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                use diesel::{pg::Pg, serialize::ToSql, sql_types::Text};
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::sqlite::Sqlite> for $t {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> diesel::serialize::Result {
                use diesel::{serialize::ToSql, sql_types::Text, sqlite::Sqlite};
                <str as ToSql<Text, Sqlite>>::to_sql(self.as_str(), out)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, $crate::db::MultiBackend> for $t {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, $crate::db::MultiBackend>,
            ) -> diesel::serialize::Result {
                out.set_value((diesel::sql_types::Text, self));
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $t {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                use diesel::{deserialize::FromSql, pg::Pg, sql_types::Text};
                let text = <String as FromSql<Text, Pg>>::from_sql(value)?;
                $crate::db::text_column::parse::<$t>(&text)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::sqlite::Sqlite> for $t {
            fn from_sql(
                value: diesel::sqlite::SqliteValue<'_, '_, '_>,
            ) -> diesel::deserialize::Result<Self> {
                use diesel::{deserialize::FromSql, sql_types::Text, sqlite::Sqlite};
                let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
                $crate::db::text_column::parse::<$t>(&text)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, $crate::db::MultiBackend>
            for $t
        {
            fn from_sql(value: $crate::db::MultiRawValue<'_>) -> diesel::deserialize::Result<Self> {
                value.from_sql::<Self, diesel::sql_types::Text>()
            }
        }
    };
}

/// Parses a stored value of a closed set; a value outside it is an error naming both.
pub fn parse<T: std::str::FromStr>(text: &str) -> diesel::deserialize::Result<T> {
    text.parse::<T>().map_err(|_| {
        let kind = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("value");
        format!("corrupt stored {kind}: {text:?} is not one of its values").into()
    })
}

/// Defines a closed set of wire strings with parsing that names the allowed values, stored as a
/// text column (a stored value outside the set fails the read). The using crate depends on
/// serde, utoipa and diesel.
#[macro_export]
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// "must be one of A, B, C"
            pub fn expected() -> String {
                format!("must be one of {}", Self::NAMES.join(", "))
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Self::expected()),
                }
            }
        }

        $crate::text_column!($name);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Runs `$body` with `$c` bound to the backend's own connection: for statements Diesel builds
/// for each backend but not for the multi-backend connection (upserts: `ON CONFLICT`).
///
/// ```text
/// agora_shared::on_each_backend!(conn, c => diesel::insert_into(t).values(row)
///     .on_conflict(t::id).do_nothing().execute(c))?;
/// ```
#[macro_export]
macro_rules! on_each_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
