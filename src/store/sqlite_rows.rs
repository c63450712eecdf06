//! The row types read by position on the SQLite writer's own connection (cheaper than by name on
//! its hot path): each row type's columns are listed once, in the order of its `*_columns_sql!`
//! statement text, which is also the order of the struct's fields.

use rusqlite::Row;

use crate::domain::origin::UnknownValue;
use crate::store::{EventRow, HistoryRow, InvoiceRow, QuarantineRow};

/// A row read column by column, in field order.
pub(crate) trait ByPosition: Sized {
    fn by_position(r: &Row<'_>) -> rusqlite::Result<Self>;
}

/// `by_position!(Row { field, typed_field: stored, … })`: column `i` is the `i`-th field; a field
/// marked `stored` is text read as the domain type it stores.
macro_rules! by_position {
    ($row:ident { $($field:ident $(: $stored:ident)?),* $(,)? }) => {
        impl ByPosition for $row {
            #[allow(unused_assignments)]
            fn by_position(r: &Row<'_>) -> rusqlite::Result<$row> {
                let mut i = 0;
                Ok($row {
                    $($field: {
                        let value = by_position!(@read r, i $(, $stored)?);
                        i += 1;
                        value
                    },)*
                })
            }
        }
    };
    (@read $r:ident, $i:ident) => {
        $r.get($i)?
    };
    (@read $r:ident, $i:ident, stored) => {
        stored($r, $i)?
    };
}

by_position!(InvoiceRow {
    merchant_id,
    invoice_no,
    status: stored,
    amount_minor,
    currency,
    exponent,
    origin: stored,
    trusted,
    sequence,
    resp_code,
    resp_desc,
    tran_ref,
    notified_at,
    returned_at,
    needs_review,
    expires_at,
    next_inquiry_at,
    inquiry_attempts,
    last_inquiry_at,
    created_at,
    updated_at,
});

by_position!(EventRow {
    seq,
    event_id,
    merchant_id,
    invoice_no,
    sequence,
    event_type,
    body,
    created_at,
    published_at,
    attempts,
    last_error,
    claimed_until,
    traceparent,
});

by_position!(HistoryRow { id, kind, resp_code, resp_desc, outcome, raw, normalized, received_at });

by_position!(QuarantineRow {
    id,
    kind,
    merchant_id,
    invoice_no,
    dedupe_key,
    raw,
    error,
    received_at,
    released_at,
    release_outcome,
});

/// A text column read as the domain type it stores (a status, an origin).
fn stored<T: TryFrom<String, Error = UnknownValue>>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    T::try_from(r.get::<_, String>(i)?)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}
