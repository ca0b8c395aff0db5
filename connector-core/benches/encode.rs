//! Encoder micro-benchmark: a generator event (six columns, ~230 bytes of JSON values) into the
//! Debezium envelope and the flat format. `cargo bench -p connector-core --bench encode`.

use std::hint::black_box;

use connector_core::config::ConfigSection;
use connector_core::generator::{Generator, GeneratorConfig};
use connector_core::{Context, Encoder, Format};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let section = ConfigSection::from_yaml(
        "source",
        "type: generator\npayload_bytes: 100\nupdate_percent: 50\n",
    )
    .expect("config");
    let config: GeneratorConfig = section.extract().expect("config");
    let generator = Generator::new(config, &Context::new("bench")).expect("generator");
    let events: Vec<_> = (0..1000).map(|n| generator.event(n)).collect();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, format) in [("debezium", Format::Debezium), ("flat", Format::Flat)] {
        let encoder = Encoder::new("bench", format);
        let mut out = Vec::with_capacity(1 << 20);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for ev in &events {
                    encoder.write_key(ev, &mut out);
                    encoder.write_value(ev, 1_700_000_000_000_000, &mut out);
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
