//! The answer to `GET /api/v1/waits`: where a service's instrumented
//! futures waited, as shares of each name's waiting by await point, and the
//! stuck ones.

use lagscope_wire::api::{StuckEntry, TaskWaits, WaitShare, WaitsResponse};
use lagscope_wire::waits::await_point;

use crate::store::waits::WaitsMerged;

/// The response for `merged`, only name `task` if given, with folded
/// stacks if `folded`.
pub fn response(
    service: &str,
    instances: Vec<String>,
    merged: &WaitsMerged,
    task: Option<&str>,
    folded: bool,
) -> WaitsResponse {
    let mut tasks: Vec<TaskWaits> = merged
        .by_task
        .iter()
        .filter(|(name, _)| task.is_none_or(|t| t == name.as_str()))
        .map(|(name, points)| {
            let total = merged.total_us(name);
            TaskWaits {
                task: name.clone(),
                wait_us: total,
                sites: points
                    .iter()
                    .map(|p| WaitShare {
                        kind: p.kind.name().to_string(),
                        await_point: await_point(&p.frames).label(),
                        frames: p.frames.clone(),
                        wait_us: p.wait_us,
                        share: if total == 0 {
                            0.0
                        } else {
                            p.wait_us as f64 / total as f64
                        },
                        waits: p.waits,
                    })
                    .collect(),
            }
        })
        .collect();
    tasks.sort_by_key(|t| std::cmp::Reverse(t.wait_us));
    let stuck = merged
        .stuck
        .iter()
        .filter(|(_, s)| task.is_none_or(|t| t == s.task))
        .map(|(instance, s)| StuckEntry {
            instance: instance.clone(),
            task: s.task.clone(),
            pending_ms: s.pending_ms,
            kind: s.kind.clone(),
            await_point: if s.frames.is_empty() {
                String::new()
            } else {
                await_point(&s.frames).label()
            },
            frames: s.frames.clone(),
        })
        .collect();
    WaitsResponse {
        service: service.to_string(),
        instances,
        start_ms: merged.start_ms,
        end_ms: merged.end_ms,
        captures: merged.captures,
        dropped: merged.dropped,
        tasks,
        stuck,
        stuck_total: merged
            .stuck_counts
            .iter()
            .filter(|(t, _)| task.is_none_or(|want| want == t.as_str()))
            .map(|(_, n)| n)
            .sum(),
        folded: if folded {
            merged.folded(task).to_text()
        } else {
            String::new()
        },
    }
}
