// Program B of the Debezium compatibility harness (issue 15; run it with `scripts/compat.sh
// debezium`): Debezium 3.6.3 embedded (io.debezium.engine.DebeziumEngine, JSON format with Connect
// schemas, a file offset store), writing every record it produces as a JSON line
// {"topic": T, "key": K, "value": V} (K and V: the JSON text JsonConverter wrote, as strings; null
// for a null key or a tombstone), the format program A (CompatRead) reads.
//
// Usage: DebeziumCapture KEY=VALUE...
//   compat.out=FILE          where the records go (required)
//   compat.dir=DIR           offsets and schema history (default: the directory of compat.out)
//   compat.ready.file=FILE   created once the connector task has started (the PostgreSQL slot
//                            exists, so every later change is captured)
//   compat.stop.topic=T      stop after the first record of topic T (a marker row)
//   compat.max.records=N     stop after N records
//   compat.timeout.ms=MS     fail when not stopped by then (default 180000)
//   anything else            a Debezium connector/engine property, e.g. database.hostname=...,
//                            decimal.handling.mode=string (the defaults below can be overridden)
// The engine is closed cleanly at the end (with slot.drop.on.stop=true, the default here, the
// PostgreSQL connector drops its slot). Exit status 0 when stopped as asked, 1 on a connector
// error or timeout, 2 on bad arguments.

import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

public final class DebeziumCapture {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        // Engine mechanics (overridable).
        props.setProperty("name", "compat");
        props.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
        props.setProperty("offset.storage", "org.apache.kafka.connect.storage.FileOffsetBackingStore");
        props.setProperty("offset.flush.interval.ms", "0");
        props.setProperty("plugin.name", "pgoutput");
        props.setProperty("snapshot.mode", "no_data");
        props.setProperty("slot.drop.on.stop", "true");
        props.setProperty("publication.autocreate.mode", "filtered");
        props.setProperty("converter.schemas.enable", "true");
        props.setProperty("schema.history.internal", "io.debezium.storage.file.history.FileSchemaHistory");

        String out = null;
        String dir = null;
        String ready = null;
        String stopTopic = null;
        long maxRecords = Long.MAX_VALUE;
        long timeoutMs = 180_000;
        for (String a : args) {
            int eq = a.indexOf('=');
            if (eq <= 0) {
                System.err.println("debezium capture: argument `" + a + "` is not KEY=VALUE");
                System.exit(2);
            }
            String k = a.substring(0, eq);
            String v = a.substring(eq + 1);
            switch (k) {
                case "compat.out" -> out = v;
                case "compat.dir" -> dir = v;
                case "compat.ready.file" -> ready = v;
                case "compat.stop.topic" -> stopTopic = v;
                case "compat.max.records" -> maxRecords = Long.parseLong(v);
                case "compat.timeout.ms" -> timeoutMs = Long.parseLong(v);
                default -> props.setProperty(k, v);
            }
        }
        if (out == null) {
            System.err.println("debezium capture: compat.out=FILE is required");
            System.exit(2);
        }
        Path outPath = Path.of(out).toAbsolutePath();
        Path work = dir != null ? Path.of(dir) : outPath.getParent();
        Files.createDirectories(work);
        props.putIfAbsent("offset.storage.file.filename", work.resolve("debezium.offsets").toString());
        props.putIfAbsent(
                "schema.history.internal.file.filename", work.resolve("debezium.history").toString());

        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<String> failure = new AtomicReference<>();
        final String stop = stopTopic;
        final long max = maxRecords;
        final Path readyPath = ready == null ? null : Path.of(ready);
        long[] count = {0};
        try (BufferedWriter w = Files.newBufferedWriter(outPath, StandardCharsets.UTF_8)) {
            DebeziumEngine<ChangeEvent<String, String>> engine =
                    DebeziumEngine.create(Json.class)
                            .using(props)
                            .using(
                                    new DebeziumEngine.ConnectorCallback() {
                                        @Override
                                        public void taskStarted() {
                                            if (readyPath != null) {
                                                try {
                                                    Files.writeString(readyPath, "started\n");
                                                } catch (IOException e) {
                                                    failure.compareAndSet(null, "ready file: " + e);
                                                    done.countDown();
                                                }
                                            }
                                        }
                                    })
                            .using(
                                    (success, message, error) -> {
                                        if (!success || error != null) {
                                            failure.compareAndSet(
                                                    null,
                                                    "engine stopped: "
                                                            + message
                                                            + (error == null ? "" : " (" + error + ")"));
                                        }
                                        done.countDown();
                                    })
                            .notifying(
                                    (List<ChangeEvent<String, String>> records,
                                            DebeziumEngine.RecordCommitter<ChangeEvent<String, String>>
                                                    committer) -> {
                                        for (ChangeEvent<String, String> r : records) {
                                            if (done.getCount() == 0) {
                                                break;
                                            }
                                            synchronized (w) {
                                                try {
                                                    w.write(line(r));
                                                    w.write('\n');
                                                    w.flush();
                                                } catch (IOException e) {
                                                    failure.compareAndSet(null, "writing " + outPath + ": " + e);
                                                    done.countDown();
                                                }
                                            }
                                            count[0]++;
                                            committer.markProcessed(r);
                                            if (r.destination().equals(stop) || count[0] >= max) {
                                                done.countDown();
                                            }
                                        }
                                        committer.markBatchFinished();
                                    })
                            .build();
            ExecutorService ex = Executors.newSingleThreadExecutor();
            ex.execute(engine);
            boolean finished = done.await(timeoutMs, TimeUnit.MILLISECONDS);
            if (!finished) {
                failure.compareAndSet(
                        null, "timed out after " + timeoutMs + " ms with " + count[0] + " records");
            }
            engine.close();
            ex.shutdown();
            if (!ex.awaitTermination(60, TimeUnit.SECONDS)) {
                failure.compareAndSet(null, "the engine did not stop within 60 s");
            }
        }
        if (failure.get() != null) {
            System.err.println("debezium capture: " + failure.get());
            System.exit(1);
        }
        System.err.printf("debezium capture: %d records into %s%n", count[0], outPath);
        System.exit(0);
    }

    private static String line(ChangeEvent<String, String> r) {
        StringBuilder b = new StringBuilder();
        b.append("{\"topic\":");
        quote(b, r.destination());
        b.append(",\"key\":");
        quote(b, r.key());
        b.append(",\"value\":");
        quote(b, r.value());
        b.append('}');
        return b.toString();
    }

    private static void quote(StringBuilder b, String s) {
        if (s == null) {
            b.append("null");
            return;
        }
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        b.append('"');
    }
}
