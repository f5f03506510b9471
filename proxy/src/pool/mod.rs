//! Account pools: which account serves a call ([`select`]), what its outcome does to the
//! account ([`outcome`]), concurrency slots shared by every replica ([`slots`]) and health
//! checks that bring unhealthy accounts back ([`health`]). All shared state goes through the
//! store; what is kept here is per-process (in-flight counts, a round-robin cursor).

pub mod health;
pub mod outcome;
pub mod select;
pub mod slots;

pub use select::{Pick, Selector};
