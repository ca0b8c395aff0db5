// Program A of the Debezium compatibility harness (issue 15; run it with `scripts/compat.sh read`).
//
// Reads records from a file of JSON lines {"topic": T, "key": K, "value": V}, where K and V are the
// record's key and value bytes as JSON strings (null for a null key or a tombstone). Each record
// goes through what a Kafka Connect sink behind Debezium's "unwrap" SMT does with it: Kafka
// Connect's real JsonConverter (toConnectData, key and value) and then Debezium's real
// ExtractNewRecordState, in two variants (its defaults, and delete.tombstone.handling.mode=rewrite
// with add.fields and add.headers), and the unwrapped key and value are converted back to JSON with
// JsonConverter.fromConnectData. One result line per record and variant is written to the output:
//
//   {"line": N, "topic": T, "variant": "unwrap", "ok": true, "dropped": false,
//    "key": <JSON or null>, "value": <JSON or null>}
//   {"line": N, "topic": T, "variant": "unwrap", "ok": false, "stage": "value.toConnectData",
//    "error": "org.apache.kafka.connect.errors.DataException: Unknown schema type: float32"}
//
// Usage: CompatRead IN OUT [schemas.enable (true|false, default true)]
// Exit status: 0 when every record of every variant was read, 1 otherwise (with a summary on
// stderr), 2 on bad arguments or an unreadable input.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.debezium.transforms.ExtractNewRecordState;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

public final class CompatRead {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The ExtractNewRecordState configurations every record goes through. */
    private static Map<String, Map<String, String>> variants() {
        Map<String, Map<String, String>> v = new LinkedHashMap<>();
        v.put("unwrap", Map.of());
        v.put(
                "unwrap-rewrite",
                Map.of(
                        "delete.tombstone.handling.mode", "rewrite",
                        "add.fields", "op,table,source.ts_ms",
                        "add.headers", "op"));
        return v;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: CompatRead IN OUT [schemas.enable]");
            System.exit(2);
        }
        Path in = Path.of(args[0]);
        Path out = Path.of(args[1]);
        boolean schemas = args.length < 3 || Boolean.parseBoolean(args[2]);

        JsonConverter keyConv = converter(schemas, true);
        JsonConverter valueConv = converter(schemas, false);
        Map<String, ExtractNewRecordState<SourceRecord>> smts = new LinkedHashMap<>();
        for (Map.Entry<String, Map<String, String>> e : variants().entrySet()) {
            ExtractNewRecordState<SourceRecord> smt = new ExtractNewRecordState<>();
            smt.configure(e.getValue());
            smts.put(e.getKey(), smt);
        }

        int records = 0;
        int failures = 0;
        Map<String, Integer> byError = new TreeMap<>();
        try (BufferedReader r = Files.newBufferedReader(in, StandardCharsets.UTF_8);
                BufferedWriter w = Files.newBufferedWriter(out, StandardCharsets.UTF_8)) {
            String text;
            int line = 0;
            while ((text = r.readLine()) != null) {
                line++;
                if (text.isBlank()) {
                    continue;
                }
                JsonNode rec;
                try {
                    rec = JSON.readTree(text);
                } catch (Exception e) {
                    System.err.println(in + ":" + line + ": not a JSON line: " + e.getMessage());
                    System.exit(2);
                    return;
                }
                String topic = rec.path("topic").asText(null);
                if (topic == null) {
                    System.err.println(in + ":" + line + ": no \"topic\"");
                    System.exit(2);
                }
                byte[] key = bytes(rec.get("key"));
                byte[] value = bytes(rec.get("value"));
                records++;
                for (Map.Entry<String, ExtractNewRecordState<SourceRecord>> smt : smts.entrySet()) {
                    ObjectNode res = JSON.createObjectNode();
                    res.put("line", line);
                    res.put("topic", topic);
                    res.put("variant", smt.getKey());
                    String stage = "key.toConnectData";
                    try {
                        SchemaAndValue k = keyConv.toConnectData(topic, key);
                        stage = "value.toConnectData";
                        SchemaAndValue v = valueConv.toConnectData(topic, value);
                        SourceRecord sr =
                                new SourceRecord(
                                        null, null, topic, null, k.schema(), k.value(), v.schema(),
                                        v.value());
                        stage = "ExtractNewRecordState";
                        SourceRecord u = smt.getValue().apply(sr);
                        res.put("ok", true);
                        res.put("dropped", u == null);
                        if (u != null) {
                            stage = "key.fromConnectData";
                            res.set("key", tree(keyConv.fromConnectData(topic, u.keySchema(), u.key())));
                            stage = "value.fromConnectData";
                            res.set(
                                    "value",
                                    tree(valueConv.fromConnectData(topic, u.valueSchema(), u.value())));
                        }
                    } catch (Throwable e) {
                        failures++;
                        String msg = e.getClass().getName() + ": " + e.getMessage();
                        res.removeAll();
                        res.put("line", line);
                        res.put("topic", topic);
                        res.put("variant", smt.getKey());
                        res.put("ok", false);
                        res.put("stage", stage);
                        res.put("error", msg);
                        byError.merge(stage + ": " + msg, 1, Integer::sum);
                    }
                    w.write(JSON.writeValueAsString(res));
                    w.write('\n');
                }
            }
        }
        System.err.printf(
                "compat read: %d records x %d variants, %d failures (schemas.enable=%s)%n",
                records, smts.size(), failures, schemas);
        for (Map.Entry<String, Integer> e : byError.entrySet()) {
            System.err.printf("  %4d x %s%n", e.getValue(), e.getKey());
        }
        System.exit(failures == 0 ? 0 : 1);
    }

    private static JsonConverter converter(boolean schemas, boolean isKey) {
        JsonConverter c = new JsonConverter();
        Map<String, Object> cfg = new LinkedHashMap<>();
        cfg.put("schemas.enable", Boolean.toString(schemas));
        // Connect's default for decimals is base64 bytes, which is what Debezium writes.
        cfg.put("decimal.format", "BASE64");
        c.configure(cfg, isKey);
        return c;
    }

    private static byte[] bytes(JsonNode n) {
        if (n == null || n.isNull()) {
            return null;
        }
        return n.asText().getBytes(StandardCharsets.UTF_8);
    }

    private static JsonNode tree(byte[] b) throws Exception {
        if (b == null) {
            return JSON.nullNode();
        }
        return JSON.readTree(b);
    }
}
