//! Transform-chain micro-benchmark: the chain of the `pg-transforms` suite part (filter with a
//! CEL `when` + mask sha256 + route) on generator events, then encoded, beside encoding alone.
//! `cargo bench -p connector-core --bench transforms`.

use std::hint::black_box;

use connector_core::config::ConfigSection;
use connector_core::event::Batch;
use connector_core::generator::{Generator, GeneratorConfig};
use connector_core::{Context, Encoder, Format, Registry};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const CHAIN: [(&str, &str); 3] = [
    (
        "transforms[0]",
        "{ type: filter, tables: [public.xf_orders], ops: [c, u, d, r], when: \"op != 't' && after.id > 0\" }",
    ),
    (
        "transforms[1]",
        "{ type: mask, columns: [public.xf_orders.name], with: sha256, salt_env: CDC_BENCH_SALT }",
    ),
    (
        "transforms[2]",
        "{ type: route, tables: 'public\\.xf_(.*)', topic: 'bench_xf.$1' }",
    ),
];

fn bench(c: &mut Criterion) {
    std::env::set_var("CDC_BENCH_SALT", "bench-salt");
    let ctx = Context::new("bench");
    let section = ConfigSection::from_yaml(
        "source",
        "type: generator\npayload_bytes: 100\ntables: [public.xf_orders]\n",
    )
    .expect("config");
    let config: GeneratorConfig = section.extract().expect("config");
    let generator = Generator::new(config, &ctx).expect("generator");
    let events: Vec<_> = (0..1000).map(|n| generator.event(n)).collect();
    let sections: Vec<_> = CHAIN
        .iter()
        .map(|(key, yaml)| ConfigSection::from_yaml(key, yaml).expect("transform config"))
        .collect();
    let registry = Registry::with_builtins();
    let mut group = c.benchmark_group("transforms");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (i, name) in ["filter", "mask", "route"].into_iter().enumerate() {
        let mut one = registry
            .build_transforms(&sections[i..=i], &ctx)
            .expect("transform");
        group.bench_function(format!("{name}_alone"), |b| {
            b.iter_batched(
                || Batch::new(events.clone(), None),
                |mut batch| {
                    one.apply(&mut batch).expect("transform");
                    black_box(batch.events.len())
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.throughput(Throughput::Elements(events.len() as u64));
    for schemas in [false, true] {
        let encoder = Encoder::new("bench", Format::Debezium).with_schemas(schemas);
        let mut out = Vec::with_capacity(1 << 20);
        let suffix = if schemas { "schemas" } else { "no_schemas" };
        group.bench_function(format!("encode_only_{suffix}"), |b| {
            b.iter_batched(
                || Batch::new(events.clone(), None),
                |batch| {
                    out.clear();
                    for ev in &batch.events {
                        encoder.write_key(ev, &mut out);
                        encoder.write_value(ev, 1_700_000_000_000_000, &mut out);
                    }
                    black_box(out.len())
                },
                BatchSize::SmallInput,
            )
        });
        let mut chain = registry
            .build_transforms(&sections, &ctx)
            .expect("transforms");
        group.bench_function(format!("chain_then_encode_{suffix}"), |b| {
            b.iter_batched(
                || Batch::new(events.clone(), None),
                |mut batch| {
                    chain.apply(&mut batch).expect("chain");
                    out.clear();
                    for ev in &batch.events {
                        encoder.write_key(ev, &mut out);
                        encoder.write_value(ev, 1_700_000_000_000_000, &mut out);
                    }
                    black_box(out.len())
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
