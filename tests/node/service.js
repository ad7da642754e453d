// A Node.js service reporting OpenTelemetry runtime metrics over OTLP/HTTP
// (protobuf), the way @opentelemetry/instrumentation-runtime-node names them,
// measured with perf_hooks. With BLOCK=1 it blocks its event loop for 300 ms
// every second. lagscope's end-to-end tests run it against a collector.
'use strict';
const os = require('os');
const v8 = require('v8');
const { monitorEventLoopDelay, performance } = require('perf_hooks');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-proto');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const exporter = new OTLPMetricExporter({ url: process.env.OTLP_URL });
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 500 });
const provider = new MeterProvider({
  resource: resourceFromAttributes({
    'service.name': process.env.SERVICE || 'node-svc',
    'service.instance.id': `${os.hostname()}:${process.pid}`,
    'process.pid': process.pid,
    'host.name': os.hostname(),
  }),
  readers: [reader],
});
const meter = provider.getMeter('lagscope-node-fixture');

const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const seconds = (ns) => ns / 1e9;
for (const [name, read] of [
  ['min', () => delay.min],
  ['max', () => delay.max],
  ['mean', () => delay.mean],
  ['p50', () => delay.percentile(50)],
  ['p90', () => delay.percentile(90)],
  ['p99', () => delay.percentile(99)],
]) {
  meter
    .createObservableGauge(`nodejs.eventloop.delay.${name}`, { unit: 's' })
    .addCallback((r) => r.observe(seconds(read())));
}
let elu = performance.eventLoopUtilization();
meter.createObservableGauge('nodejs.eventloop.utilization', { unit: '1' }).addCallback((r) => {
  r.observe(performance.eventLoopUtilization(elu).utilization);
  elu = performance.eventLoopUtilization();
});
meter.createObservableGauge('v8js.memory.heap.used', { unit: 'By' }).addCallback((r) => {
  for (const s of v8.getHeapSpaceStatistics()) {
    r.observe(s.space_used_size, { 'v8js.heap.space.name': s.space_name });
  }
});
meter
  .createObservableGauge('process.memory.usage', { unit: 'By' })
  .addCallback((r) => r.observe(process.memoryUsage().rss));
meter
  .createObservableGauge('system.cpu.logical.count', { unit: '{cpu}' })
  .addCallback((r) => r.observe(os.cpus().length));

// Each delay window covers the time since the previous export.
setInterval(() => delay.reset(), 2000);

if (process.env.BLOCK === '1') {
  setInterval(function blockTheEventLoop() {
    const end = Date.now() + 300;
    while (Date.now() < end) {}
  }, 1000);
}

// Never outlive the test that started it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 120000);
console.log('node service reporting to', process.env.OTLP_URL);
