//! An axum service with lagscope: the agent watches the runtime, and the
//! tower layer names each request's monitor by its route, so the collector,
//! `/metrics` (`task="GET /orders/{id}"`), the dashboard's `t` pane and
//! `lagscope doctor` can say where each route's requests wait.
//!
//! ```text
//! lagscope collector &                       # API and dashboard data on :6671
//! LAGSCOPE_COLLECTOR=http://127.0.0.1:6670 \
//!   cargo run --example axum --features axum -p lagscope
//! curl localhost:3000/orders/42; curl -X POST localhost:3000/checkout
//! lagscope tui                               # press `t`
//! ```
//!
//! `PORT` picks the port (default 3000).

use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;

/// Waits on "the database": time the doctor reports as idle.
async fn order(Path(id): Path<u64>) -> String {
    tokio::time::sleep(Duration::from_millis(40)).await;
    format!("order {id}\n")
}

/// Prices a cart: CPU on the worker, polled time.
async fn checkout() -> String {
    let mut h = 0u64;
    for k in 0..200_000u64 {
        h = h.wrapping_mul(6364136223846793005).wrapping_add(k);
    }
    format!("total {}\n", h % 10_000)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Runtime::new()?;
    // Configured from LAGSCOPE_* (collector, service name, …).
    let agent = lagscope::Agent::builder()
        .service("axum-example")
        .start(rt.handle().clone())?;
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .route("/checkout", post(checkout))
        .layer(lagscope::route::TaskMonitorLayer::new());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })?;
    agent.shutdown();
    Ok(())
}
