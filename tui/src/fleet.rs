//! Several collectors in one dashboard: their listings merged, and each
//! instance's own requests sent to the collector that holds it.

use std::collections::{BTreeMap, HashMap};

use lagscope_client::Client;
use lagscope_wire::api::{Health, ServiceSummary, ServicesResponse};

/// The collectors a dashboard shows.
#[derive(Debug, Clone)]
pub struct Fleet {
    clients: Vec<Client>,
}

/// The merged listing, and which collector holds each instance.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Every collector's services, a service's instances from all of them.
    pub services: Option<ServicesResponse>,
    /// Collectors that did not answer, with why.
    pub failed: Vec<String>,
    holders: HashMap<(String, String), usize>,
}

impl Fleet {
    /// A dashboard over `clients` (at least one).
    pub fn new(clients: Vec<Client>) -> Fleet {
        Fleet { clients }
    }

    /// The collectors' URLs, for the title.
    pub fn source(&self) -> String {
        let urls: Vec<&str> = self.clients.iter().map(Client::url).collect();
        urls.join(" + ")
    }

    /// Every collector.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// Every collector's listing, merged.
    pub fn services(&self) -> Listing {
        let answers = self
            .clients
            .iter()
            .map(|c| c.services().map_err(|e| e.to_string()))
            .collect();
        merge(answers)
    }

    /// The collector holding `(service, instance)` in `listing`.
    pub fn holder(&self, listing: &Listing, service: &str, instance: &str) -> Option<&Client> {
        let i = listing
            .holders
            .get(&(service.to_string(), instance.to_string()))?;
        self.clients.get(*i)
    }
}

/// Merges the collectors' answers, in their order: services by name (one
/// service's instances from all collectors together), counters summed.
pub fn merge(answers: Vec<Result<ServicesResponse, String>>) -> Listing {
    let mut listing = Listing::default();
    let mut services: BTreeMap<String, ServiceSummary> = BTreeMap::new();
    let mut merged: Option<ServicesResponse> = None;
    for (i, answer) in answers.into_iter().enumerate() {
        let response = match answer {
            Ok(r) => r,
            Err(e) => {
                listing.failed.push(e);
                continue;
            }
        };
        for service in response.services.iter() {
            for instance in &service.instances {
                listing
                    .holders
                    .entry((service.service.clone(), instance.instance.clone()))
                    .or_insert(i);
            }
        }
        for service in response.services.clone() {
            match services.get_mut(&service.service) {
                Some(s) => {
                    // Live instances of each side weigh the mean busy ratio.
                    let live = |s: &ServiceSummary| {
                        s.instances
                            .iter()
                            .filter(|i| i.health == Health::Live)
                            .count() as f64
                    };
                    let (na, nb) = (live(s), live(&service));
                    s.busy_ratio_mean = match (s.busy_ratio_mean, service.busy_ratio_mean) {
                        (Some(a), Some(b)) if na + nb > 0.0 => Some((a * na + b * nb) / (na + nb)),
                        (a, b) => a.or(b),
                    };
                    s.lag_p99_us_max = s.lag_p99_us_max.max(service.lag_p99_us_max);
                    s.rss_bytes_total = match (s.rss_bytes_total, service.rss_bytes_total) {
                        (Some(a), Some(b)) => Some(a + b),
                        (a, b) => a.or(b),
                    };
                    s.instances.extend(service.instances);
                    s.instances.sort_by(|a, b| a.instance.cmp(&b.instance));
                }
                None => {
                    services.insert(service.service.clone(), service);
                }
            }
        }
        match &mut merged {
            None => merged = Some(response),
            Some(m) => {
                let (a, b) = (&mut m.collector, &response.collector);
                a.agents_connected += b.agents_connected;
                a.samples_ingested += b.samples_ingested;
                a.streams_rejected += b.streams_rejected;
                a.samples_refused += b.samples_refused;
                a.input_cut += b.input_cut;
                a.history_bytes += b.history_bytes;
                a.history_bytes_limit += b.history_bytes_limit;
                if a.recording.is_none() {
                    a.recording.clone_from(&b.recording);
                }
                if m.next_cursor.is_none() {
                    m.next_cursor.clone_from(&response.next_cursor);
                }
            }
        }
    }
    if let Some(mut m) = merged {
        m.services = services.into_values().collect();
        listing.services = Some(m);
    }
    listing
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagscope_wire::api::InstanceSummary;

    fn listing(services: &[(&str, &[&str])], agents: u64) -> ServicesResponse {
        let mut r: ServicesResponse = serde_json::from_value(serde_json::json!({
            "services": [],
            "collector": {
                "agents_connected": agents, "samples_ingested": 0, "streams_rejected": 0,
                "history_bytes": 10, "history_bytes_limit": 100
            }
        }))
        .expect("a listing");
        r.services = services
            .iter()
            .map(|(name, instances)| {
                let mut s: ServiceSummary = serde_json::from_value(serde_json::json!({
                    "service": name, "instances": [], "lag_p99_us_max": 100,
                    "busy_ratio_mean": 0.5, "rss_bytes_total": 1000
                }))
                .expect("a service");
                s.instances = instances
                    .iter()
                    .map(|i| {
                        let mut inst: InstanceSummary = serde_json::from_value(serde_json::json!({
                            "instance": i, "health": "live", "pid": 1, "host": "h",
                            "agent_version": "v", "capabilities": [], "last_sample_ms": 1,
                            "samples": 1, "dropped_samples": 0, "latest": null
                        }))
                        .expect("an instance");
                        inst.instance = (*i).to_string();
                        inst
                    })
                    .collect();
                s
            })
            .collect();
        r
    }

    #[test]
    fn listings_merge_by_service_and_remember_who_holds_what() {
        let a = listing(&[("orders", &["a1"]), ("users", &["u1"])], 2);
        let b = listing(&[("billing", &["b1"]), ("orders", &["a2"])], 3);
        let merged = merge(vec![Ok(a), Err("down".into()), Ok(b)]);
        let services = merged.services.as_ref().expect("merged");
        let names: Vec<&str> = services
            .services
            .iter()
            .map(|s| s.service.as_str())
            .collect();
        assert_eq!(names, ["billing", "orders", "users"]);
        assert_eq!(services.services[1].instances.len(), 2);
        assert_eq!(services.services[1].rss_bytes_total, Some(2000));
        assert_eq!(services.services[1].busy_ratio_mean, Some(0.5));
        assert_eq!(services.collector.agents_connected, 5);
        assert_eq!(services.collector.history_bytes_limit, 200);
        assert_eq!(merged.failed, ["down"]);
        assert_eq!(merged.holders[&("orders".into(), "a2".into())], 2);
        assert_eq!(merged.holders[&("users".into(), "u1".into())], 0);
        assert!(merge(vec![Err("x".into())]).services.is_none());
    }
}
