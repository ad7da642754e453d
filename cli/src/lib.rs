//! The `lagscope` command, a thin layer over the libraries: it composes the
//! collector ([`lagscope_collector`]), the dashboard ([`lagscope_tui`]), the
//! API client ([`lagscope_client`]) and, for the demo, the fixture services.
//!
//! One module per subcommand; [`load`] is the loopback load generator behind
//! `doctor --load` (and the measurement harnesses).

pub mod collector;
pub mod demo;
pub mod doctor;
pub mod load;
pub mod profile;
pub mod replay;
