package nectr.sim;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;

/**
 * The HTTPS side of the simulator (--https): a test CA and a server certificate for
 * 127.0.0.1 signed by it, made with keytool, as a real controller behind nginx would have.
 * The agent trusts the CA through -cert; the JNLP4 identity is unrelated (as in Jenkins).
 */
final class WebTls {
    private static final String PASS = "nectrweb";

    final SSLContext context;
    final Path caPem;

    private WebTls(SSLContext context, Path caPem) {
        this.context = context;
        this.caPem = caPem;
    }

    private static void keytool(Path dir, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "keytool");
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile());
        pb.redirectErrorStream(true);
        pb.redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("keytool.log").toFile()));
        Process p = pb.start();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("keytool timed out");
        }
        if (p.exitValue() != 0) throw new IOException("keytool " + args[0] + " failed: " + Files.readString(dir.resolve("keytool.log")));
    }

    /** Creates DIR/web-ca.p12, DIR/web-server.p12 and DIR/web-ca.pem unless present. */
    static WebTls loadOrCreate(Path dir) throws Exception {
        Files.createDirectories(dir);
        Path server = dir.resolve("web-server.p12");
        Path caPem = dir.resolve("web-ca.pem");
        if (!Files.exists(server) || !Files.exists(caPem)) {
            String common = "-storetype PKCS12 -storepass " + PASS + " -keypass " + PASS;
            keytool(dir, ("-genkeypair -alias ca -keyalg RSA -keysize 2048 -dname CN=nectr-test-CA -validity 3650"
                    + " -ext bc:c -keystore web-ca.p12 " + common).split(" "));
            keytool(dir, ("-exportcert -rfc -alias ca -keystore web-ca.p12 -file web-ca.pem " + common).split(" "));
            keytool(dir, ("-genkeypair -alias server -keyalg RSA -keysize 2048 -dname CN=127.0.0.1 -validity 3650"
                    + " -keystore web-server.p12 " + common).split(" "));
            keytool(dir, ("-certreq -alias server -keystore web-server.p12 -file server.csr " + common).split(" "));
            keytool(dir, ("-gencert -rfc -alias ca -keystore web-ca.p12 -infile server.csr -outfile server.pem"
                    + " -ext san=ip:127.0.0.1 -ext eku=serverAuth -validity 3650 " + common).split(" "));
            keytool(dir, ("-importcert -noprompt -alias ca -file web-ca.pem -keystore web-server.p12 " + common).split(" "));
            keytool(dir, ("-importcert -alias server -file server.pem -keystore web-server.p12 " + common).split(" "));
        }
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(server.toFile())) {
            ks.load(in, PASS.toCharArray());
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, PASS.toCharArray());
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), null, null);
        return new WebTls(ctx, caPem);
    }
}
