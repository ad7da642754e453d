//! The HTTP API's routes and query parameters, spelled once: the collector
//! routes and reads requests with these, the client writes them.
//!
//! Each route's parameters are a struct of optional fields (absent means
//! the route's default); [`ApiQuery::from_query`] reads a query string into
//! one, naming the parameter it cannot use, and [`ApiQuery::to_query`]
//! writes one back.
//!
//! ```
//! use lagscope_wire::api::query::{route, ApiQuery, StallsQuery};
//!
//! let q = StallsQuery {
//!     service: Some("checkout".into()),
//!     instance: Some("vm:42".into()),
//!     limit: Some(20),
//! };
//! let path = route::with_query(route::STALLS, &q);
//! assert_eq!(path, "/api/v1/stalls?service=checkout&instance=vm%3A42&limit=20");
//! assert_eq!(StallsQuery::from_query(path.split_once('?').unwrap().1), Ok(q));
//! let bad = StallsQuery::from_query("limit=lots").unwrap_err();
//! assert_eq!(bad.to_string(), "limit must be a whole number, got \"lots\"");
//! ```

use super::HeapKind;

/// A value one query parameter carries.
pub trait QueryValue: Sized {
    /// What the parameter takes, for errors ("a whole number").
    const EXPECTED: &'static str;
    /// The value written as `text`, if it is one.
    fn read(text: &str) -> Option<Self>;
    /// The value as text.
    fn write(&self) -> String;
}

macro_rules! whole_number {
    ($($t:ty),*) => {$(
        impl QueryValue for $t {
            const EXPECTED: &'static str = "a whole number";
            fn read(text: &str) -> Option<Self> {
                text.parse().ok()
            }
            fn write(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
whole_number!(u32, u64, usize);

impl QueryValue for bool {
    const EXPECTED: &'static str = "true or false";
    fn read(text: &str) -> Option<Self> {
        match text {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
    fn write(&self) -> String {
        self.to_string()
    }
}

impl QueryValue for String {
    const EXPECTED: &'static str = "text";
    fn read(text: &str) -> Option<Self> {
        Some(text.to_string())
    }
    fn write(&self) -> String {
        self.clone()
    }
}

impl QueryValue for HeapKind {
    const EXPECTED: &'static str = "inuse or alloc";
    fn read(text: &str) -> Option<Self> {
        HeapKind::from_name(text)
    }
    fn write(&self) -> String {
        self.name().to_string()
    }
}

/// A query parameter that does not hold what it should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The parameter.
    pub key: &'static str,
    /// What it held (decoded).
    pub value: String,
    /// What it takes.
    pub expected: &'static str,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} must be {}, got {:?}",
            self.key, self.expected, self.value
        )
    }
}

impl std::error::Error for QueryError {}

/// The parameters of one route.
pub trait ApiQuery: Sized + Default {
    /// Reads a query string (without the `?`); parameters the route does
    /// not take are ignored, and the last of a repeated one counts.
    fn from_query(query: &str) -> Result<Self, QueryError>;
    /// The parameters that are set, as a query string (without the `?`).
    fn to_query(&self) -> String;
}

macro_rules! api_query {
    ($(
        $(#[$doc:meta])*
        $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? }
    )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: Option<$ty>, )*
        }

        impl ApiQuery for $name {
            fn from_query(query: &str) -> Result<Self, QueryError> {
                let mut q = Self::default();
                for (key, value) in pairs(query) {
                    match key.as_str() {
                        $( stringify!($field) => {
                            q.$field = Some(<$ty as QueryValue>::read(&value).ok_or(QueryError {
                                key: stringify!($field),
                                value,
                                expected: <$ty as QueryValue>::EXPECTED,
                            })?);
                        } )*
                        _ => {}
                    }
                }
                Ok(q)
            }

            fn to_query(&self) -> String {
                let mut out = String::new();
                $( if let Some(v) = &self.$field {
                    if !out.is_empty() {
                        out.push('&');
                    }
                    out.push_str(stringify!($field));
                    out.push('=');
                    out.push_str(&encode(&QueryValue::write(v)));
                } )*
                out
            }
        }
    )*};
}

api_query! {
    /// `GET /metrics`.
    MetricsQuery {
        /// Only this service's instances.
        service: String,
    }

    /// `GET /api/v1/services`: one page of instances.
    ServicesQuery {
        /// Only this service.
        service: String,
        /// Instances per page.
        limit: usize,
        /// The previous page's `next_cursor`.
        cursor: String,
    }

    /// `GET /api/v1/updates`: a server-sent event each time what the
    /// collector holds changed (a sample stored, an instance connected or
    /// gone), at most one per `min_interval_ms`.
    UpdatesQuery {
        /// Least time between two events (default 50, 10 to 10000).
        min_interval_ms: u64,
    }

    /// `GET /api/v1/stalls`, newest first.
    StallsQuery {
        /// Only this service.
        service: String,
        /// Only this instance.
        instance: String,
        /// Most stalls returned.
        limit: usize,
    }

    /// `GET /api/v1/profile`: continuous CPU profile windows merged.
    ProfileQuery {
        /// The service (required).
        service: String,
        /// One instance, or all merged.
        instance: String,
        /// Start of the span, ms since the Unix epoch.
        from_ms: u64,
        /// End of the span.
        to_ms: u64,
        /// `false`: totals and top functions only.
        folded: bool,
    }

    /// `GET /api/v1/heap`: heap bytes by allocation site.
    HeapQuery {
        /// The service (required).
        service: String,
        /// One instance, or all merged.
        instance: String,
        /// In use, or allocated.
        kind: HeapKind,
        /// Start of the span, ms since the Unix epoch.
        from_ms: u64,
        /// End of the span.
        to_ms: u64,
    }

    /// `GET /api/v1/waits`: where instrumented futures waited, and the
    /// stuck ones.
    WaitsQuery {
        /// The service (required).
        service: String,
        /// One instance, or all merged.
        instance: String,
        /// Only this instrumented name.
        task: String,
        /// Start of the span, ms since the Unix epoch.
        from_ms: u64,
        /// End of the span.
        to_ms: u64,
        /// `false`: shares and the stuck list only.
        folded: bool,
    }

    /// `GET /api/v1/doctor`: a diagnosis per instance.
    DoctorQuery {
        /// The service (required).
        service: String,
        /// Only this instance.
        instance: String,
        /// The window diagnosed, ending now.
        window_ms: u64,
        /// Also return the data each diagnosis used.
        windows: bool,
    }

    /// `GET …/instances/{instance}/series`.
    SeriesQuery {
        /// Series names, comma-separated (all when absent).
        names: String,
        /// Start of the span, ms since the Unix epoch.
        from_ms: u64,
        /// End of the span.
        to_ms: u64,
        /// Most points per series.
        max_points: usize,
    }

    /// `POST …/instances/{instance}/profile`: profile a connected agent now.
    ProfileRequestQuery {
        /// How long to profile.
        seconds: u64,
        /// Samples per CPU-second.
        hz: u32,
    }

    /// `POST …/instances/{instance}/sample-interval`.
    SampleIntervalQuery {
        /// The interval, milliseconds.
        ms: u64,
    }
}

/// The API's routes. Paths with `{service}` and `{instance}` are filled in
/// by [`route::instance`].
pub mod route {
    use super::{encode, ApiQuery};

    /// Liveness, without a token.
    pub const HEALTHZ: &str = "/healthz";
    /// Prometheus exposition.
    pub const METRICS: &str = "/metrics";
    /// Services and their instances.
    pub const SERVICES: &str = "/api/v1/services";
    /// Recent stalls.
    pub const STALLS: &str = "/api/v1/stalls";
    /// Server-sent events when the collector's data changes.
    pub const UPDATES: &str = "/api/v1/updates";
    /// Continuous CPU profiles.
    pub const PROFILE: &str = "/api/v1/profile";
    /// Heap profiles.
    pub const HEAP: &str = "/api/v1/heap";
    /// Wait profiles and stuck requests.
    pub const WAITS: &str = "/api/v1/waits";
    /// Diagnoses.
    pub const DOCTOR: &str = "/api/v1/doctor";
    /// OTLP/HTTP metrics in.
    pub const OTLP_METRICS: &str = "/v1/metrics";
    /// One instance's series.
    pub const INSTANCE_SERIES: &str = "/api/v1/services/{service}/instances/{instance}/series";
    /// One instance's latest sample.
    pub const INSTANCE_LATEST: &str = "/api/v1/services/{service}/instances/{instance}/latest";
    /// Profile one instance now.
    pub const INSTANCE_PROFILE: &str = "/api/v1/services/{service}/instances/{instance}/profile";
    /// Change one instance's sample interval.
    pub const INSTANCE_SAMPLE_INTERVAL: &str =
        "/api/v1/services/{service}/instances/{instance}/sample-interval";

    /// `route` with `{service}` and `{instance}` filled in, percent-encoded.
    ///
    /// ```
    /// use lagscope_wire::api::query::route;
    /// assert_eq!(
    ///     route::instance(route::INSTANCE_LATEST, "checkout", "vm:42"),
    ///     "/api/v1/services/checkout/instances/vm%3A42/latest"
    /// );
    /// ```
    pub fn instance(route: &str, service: &str, instance: &str) -> String {
        route
            .replace("{service}", &encode(service))
            .replace("{instance}", &encode(instance))
    }

    /// `path` with `query`'s parameters, if any.
    pub fn with_query(path: &str, query: &impl ApiQuery) -> String {
        let q = query.to_query();
        if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{q}")
        }
    }
}

/// Percent-encodes `text` for a path segment or a query value: everything
/// but letters, digits and `-._~`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a form-encoded component: `+` is a space, `%XX` a byte; a `%`
/// not followed by two hex digits stays as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `key=value` pairs of a query string, in order.
fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode(k), decode(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_parameters_are_ignored_and_the_last_repeat_counts() {
        let q = DoctorQuery::from_query("pad=x&service=a&service=b&windows=true").expect("valid");
        assert_eq!(q.service.as_deref(), Some("b"));
        assert_eq!(q.windows, Some(true));
        assert_eq!(q.window_ms, None);
    }

    #[test]
    fn a_bad_value_names_its_parameter_and_what_it_takes() {
        let e = HeapQuery::from_query("service=s&kind=live").expect_err("bad kind");
        assert_eq!(e.to_string(), "kind must be inuse or alloc, got \"live\"");
        let e = ProfileQuery::from_query("folded=no").expect_err("bad flag");
        assert_eq!(e.key, "folded");
    }

    #[test]
    fn form_encoding_is_decoded() {
        let q = SeriesQuery::from_query("names=a%2Cb+c&from_ms=%31").expect("valid");
        assert_eq!(q.names.as_deref(), Some("a,b c"));
        assert_eq!(q.from_ms, Some(1));
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }

    proptest! {
        #[test]
        fn queries_survive_writing_and_reading(
            service in proptest::option::of(".*"),
            instance in proptest::option::of(".*"),
            from_ms in proptest::option::of(any::<u64>()),
            folded in proptest::option::of(any::<bool>()),
        ) {
            let q = ProfileQuery { service, instance, from_ms, to_ms: None, folded };
            prop_assert_eq!(ProfileQuery::from_query(&q.to_query()), Ok(q));
        }

        #[test]
        fn reading_any_query_string_never_panics(query in ".*") {
            let _ = ServicesQuery::from_query(&query);
            let _ = HeapQuery::from_query(&query);
        }
    }
}
