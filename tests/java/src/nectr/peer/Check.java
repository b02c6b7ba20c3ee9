package nectr.peer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.OptionalDataException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/** The `check` command: reads streams with a plain ObjectInputStream and renders them. */
final class Check {
    private Check() {
    }

    /** Processes every DIR/*.bin; returns the number of files. */
    static int checkAll(Path dir) throws IOException {
        List<Path> streams;
        try (Stream<Path> files = Files.list(dir)) {
            streams = files.filter(p -> p.getFileName().toString().endsWith(".bin")).sorted().toList();
        }
        for (Path bin : streams) {
            String name = bin.getFileName().toString();
            Path actual = dir.resolve(name.substring(0, name.length() - 4) + ".actual.json");
            Files.writeString(actual, render(Files.readAllBytes(bin)), StandardCharsets.UTF_8);
        }
        return streams.size();
    }

    /** The oracle JSON for a stream, or {"error":...} if reading or rendering failed. */
    static String render(byte[] stream) {
        try {
            return Json.array(readItems(stream));
        } catch (Exception | Error e) {
            // a message could quote an unpaired surrogate, which UTF-8 cannot encode: replace it
            String message = new String((e.getClass().getName() + ": " + e.getMessage())
                    .getBytes(StandardCharsets.UTF_8), StandardCharsets.UTF_8);
            return "{\"error\":" + Json.string(message) + "}";
        }
    }

    private static List<String> readItems(byte[] stream) throws IOException, ClassNotFoundException {
        List<String> items = new ArrayList<>();
        Dumper dumper = new Dumper();
        ByteArrayOutputStream block = new ByteArrayOutputStream();
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(stream))) {
            while (true) {
                Object o;
                try {
                    o = in.readObject();
                } catch (OptionalDataException e) {
                    if (e.eof || e.length == 0) {
                        break;
                    }
                    byte[] data = new byte[e.length];
                    in.readFully(data);
                    block.write(data);
                    continue;
                } catch (EOFException e) {
                    break;
                }
                endBlock(items, block);
                items.add(dumper.value(o));
            }
        }
        endBlock(items, block);
        return items;
    }

    private static void endBlock(List<String> items, ByteArrayOutputStream block) {
        if (block.size() > 0) {
            StringBuilder sb = new StringBuilder();
            Json.block(sb, block.toByteArray());
            items.add(sb.toString());
            block.reset();
        }
    }
}
