//! Listing services and instances: pages in (service, instance) order with
//! an opaque cursor, and a service's figures summed over its instances.

use super::*;

impl Store {
    /// Every service with its instances' latest figures.
    pub fn services(&self, now_ms: u64) -> ServicesResponse {
        self.services_page(now_ms, None, usize::MAX, None)
    }

    /// At most `limit` instances, in (service, instance) order, after the
    /// one `cursor` names (from a previous page's `next_cursor`), of one
    /// service or all; `next_cursor` is set when more follow.
    pub fn services_page(
        &self,
        now_ms: u64,
        service: Option<&str>,
        limit: usize,
        after: Option<&(String, String)>,
    ) -> ServicesResponse {
        let mut taken = 0;
        let mut next_cursor = None;
        let mut services = Vec::new();
        for (name, insts) in &self.services {
            if service.is_some_and(|s| s != name) {
                continue;
            }
            let mut page = Vec::new();
            for (id, inst) in insts {
                if after
                    .as_ref()
                    .is_some_and(|(s, i)| (name.as_str(), id.as_str()) <= (s.as_str(), i.as_str()))
                {
                    continue;
                }
                if taken == limit {
                    next_cursor = page
                        .last()
                        .map(|i: &(&String, &Instance)| encode_cursor(name, i.0))
                        .or_else(|| {
                            services.last().and_then(|s: &ServiceSummary| {
                                s.instances
                                    .last()
                                    .map(|i| encode_cursor(&s.service, &i.instance))
                            })
                        });
                    break;
                }
                page.push((id, inst));
                taken += 1;
            }
            if !page.is_empty() {
                let instances: Vec<InstanceSummary> = page
                    .into_iter()
                    .map(|(id, inst)| InstanceSummary {
                        instance: id.clone(),
                        health: self.health_of(inst, now_ms),
                        pid: inst.info.pid,
                        host: inst.info.host.clone(),
                        agent_version: inst.info.agent_version.clone(),
                        capabilities: inst.info.capabilities.clone(),
                        config_warnings: inst.info.config_warnings.clone(),
                        notices: inst.info.notices.clone(),
                        last_sample_ms: inst.latest.as_ref().map(|s| s.timestamp_ms),
                        samples: inst.samples,
                        dropped_samples: inst.latest.as_ref().map_or(0, |s| s.dropped_samples),
                        latest: inst.latest.clone(),
                    })
                    .collect();
                services.push(aggregate(name, instances));
            }
            if next_cursor.is_some() {
                break;
            }
        }
        ServicesResponse {
            services,
            collector: self.status(),
            next_cursor,
        }
    }
}

/// A page cursor: the last (service, instance) of the page, hex-encoded so
/// any name survives a query string.
pub(super) fn encode_cursor(service: &str, instance: &str) -> String {
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    format!("{}.{}", hex(service), hex(instance))
}

/// The (service, instance) a page cursor names; `None` for a cursor this
/// collector did not give out.
pub fn decode_cursor(cursor: &str) -> Option<(String, String)> {
    let unhex = |s: &str| -> Option<String> {
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        String::from_utf8(bytes).ok()
    };
    let (s, i) = cursor.split_once('.')?;
    Some((unhex(s)?, unhex(i)?))
}

pub(super) fn aggregate(service: &str, instances: Vec<InstanceSummary>) -> ServiceSummary {
    let live: Vec<&Sample> = instances
        .iter()
        .filter(|i| i.health == Health::Live)
        .filter_map(|i| i.latest.as_ref())
        .collect();
    let main = |s: &&Sample| {
        s.runtimes
            .iter()
            .find(|r| r.name == lagscope_wire::metric::MAIN_RUNTIME)
            .cloned()
    };
    let lag_p99_us_max = live
        .iter()
        .filter_map(|s| main(s)?.lag.map(|l| l.p99_us))
        .max();
    let busy: Vec<f64> = live
        .iter()
        .filter_map(|s| Some(main(s)?.busy_ratio))
        .collect();
    let busy_ratio_mean = (!busy.is_empty()).then(|| busy.iter().sum::<f64>() / busy.len() as f64);
    let rss: Vec<u64> = live.iter().filter_map(|s| s.memory.rss_bytes).collect();
    ServiceSummary {
        service: service.to_string(),
        lag_p99_us_max,
        busy_ratio_mean,
        rss_bytes_total: (!rss.is_empty()).then(|| rss.iter().sum()),
        instances,
    }
}
