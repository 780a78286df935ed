//! `use gino::prelude::*;` brings in what most code needs: the `Gino` type,
//! `.gino()` on diesel queries, and diesel's own query DSL.

// Layer: the top; re-exports from `api`, `executor` and `model`.

pub use crate::api::Gino;
pub use crate::executor::GinoQuery;
pub use crate::model::Model;
pub use diesel::prelude::*;
pub use gino_macros::{Columns, DbEnum, Model};
