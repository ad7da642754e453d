//! Exporters: where samples go after the sampler made them. Each runs on its
//! own thread behind a [`queue::BoundedQueue`], so a slow destination costs
//! bounded memory and counted drops, never a blocked sampler or host.

pub(crate) mod collector;
pub(crate) mod file;
#[cfg(feature = "otel")]
pub(crate) mod otel;
pub(crate) mod queue;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::error::Error;
use crate::options::Options;
use crate::sample::Sample;
use collector::{CollectorExporter, Identity};
use file::FileSink;
use queue::BoundedQueue;

/// A sample queue between the sampler and one exporter.
pub(crate) type SampleQueue = Arc<BoundedQueue<Arc<Sample>>>;

/// The exporters the options ask for, opened but not yet running.
pub(crate) struct Outputs {
    file: Option<(FileSink, SampleQueue)>,
    collector: Option<CollectorExporter>,
    #[cfg(feature = "otel")]
    otel: Option<otel::OtelExporter>,
}

/// An exporter's thread: its name, what it is called when it fails, and
/// what it runs.
pub(crate) type ExportThread = (&'static str, &'static str, Box<dyn FnOnce() + Send>);

impl Outputs {
    /// Opens what `options` name: the file (created or appended to), the
    /// collector's certificate authority; an error says which cannot be.
    pub(crate) fn open(
        options: &Options,
        identity: Identity,
        sample_interval_us: &Arc<AtomicU64>,
        #[cfg(target_os = "linux")] profiles: Option<Arc<crate::profiler::Exchange>>,
    ) -> Result<Self, Error> {
        let queue = || Arc::new(BoundedQueue::new(options.buffer_capacity));
        let file = match options.file.as_deref() {
            Some(path) => Some((FileSink::open(path)?, queue())),
            None => None,
        };
        let ca_pem = options
            .ca_file
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|source| Error::File {
                    path: path.clone(),
                    source,
                })
            })
            .transpose()?;
        #[cfg(feature = "otel")]
        let service = identity.service.clone();
        let collector = options.collector.clone().map(|url| CollectorExporter {
            url,
            token: options.token.clone(),
            ca_pem,
            identity,
            queue: queue(),
            sample_interval_us: sample_interval_us.clone(),
            max_unacked: options.buffer_capacity,
            #[cfg(target_os = "linux")]
            profiles,
        });
        #[cfg(feature = "otel")]
        let otel = options.otel.map(|protocol| otel::OtelExporter {
            protocol,
            service,
            queue: queue(),
            failures: Arc::default(),
        });
        Ok(Outputs {
            file,
            collector,
            #[cfg(feature = "otel")]
            otel,
        })
    }

    /// The queues the sampler publishes to, one per exporter.
    pub(crate) fn queues(&self) -> Vec<SampleQueue> {
        let mut queues = Vec::new();
        queues.extend(self.file.as_ref().map(|(_, q)| q.clone()));
        queues.extend(self.collector.as_ref().map(|c| c.queue.clone()));
        #[cfg(feature = "otel")]
        queues.extend(self.otel.as_ref().map(|o| o.queue.clone()));
        queues
    }

    /// The threads that run the exporters.
    pub(crate) fn into_threads(self) -> Vec<ExportThread> {
        let mut threads: Vec<ExportThread> = Vec::new();
        if let Some((sink, queue)) = self.file {
            threads.push((
                "lagscope-file",
                "the file exporter",
                Box::new(move || sink.run(queue)),
            ));
        }
        #[cfg(feature = "otel")]
        if let Some(exporter) = self.otel {
            threads.push((
                "lagscope-otel",
                "the OTLP exporter",
                Box::new(move || exporter.run()),
            ));
        }
        if let Some(exporter) = self.collector {
            threads.push((
                "lagscope-export",
                "the collector exporter",
                Box::new(move || exporter.run()),
            ));
        }
        threads
    }
}
