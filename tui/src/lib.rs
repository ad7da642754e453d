//! lagscope's terminal dashboard. It is a client of the collector's HTTP API,
//! so it can be closed and reopened without losing history.
//!
//! Layout: [`state`] holds what is shown and how keys change it, [`view`] draws
//! it, [`app`] runs the event loop; [`lagscope_client`] fetches from the collector.

pub mod app;
pub mod fleet;
pub mod state;
pub mod theme;
pub mod view;

pub use app::{run, run_fleet, run_with_notices};
pub use lagscope_client::Client;
