package nectr.sim;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.Base64;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509ExtendedTrustManager;

/** The controller's RSA instance identity: key + self-signed certificate (made with keytool). */
final class Identity {
    static final String ALIAS = "jenkins";
    static final char[] PASS = "nectrsim".toCharArray();

    final SSLContext sslContext;
    final byte[] spki;

    private Identity(SSLContext ctx, byte[] spki) {
        this.sslContext = ctx;
        this.spki = spki;
    }

    String base64() {
        return Base64.getEncoder().encodeToString(spki);
    }

    /** Loads DIR/identity.p12 when it exists, otherwise creates it with keytool. */
    static Identity loadOrCreate(Path dir) throws Exception {
        Files.createDirectories(dir);
        Path ks = dir.resolve("identity.p12");
        if (!Files.exists(ks)) {
            String keytool = System.getProperty("java.home") + File.separator + "bin" + File.separator + "keytool";
            ProcessBuilder pb = new ProcessBuilder(keytool, "-genkeypair", "-alias", ALIAS, "-keyalg", "RSA", "-keysize",
                    "2048", "-sigalg", "SHA256withRSA", "-dname", "CN=nectr Jenkins controller simulator", "-validity",
                    "3650", "-storetype", "PKCS12", "-keystore", ks.toString(), "-storepass", new String(PASS),
                    "-keypass", new String(PASS));
            pb.redirectErrorStream(true);
            pb.redirectOutput(dir.resolve("keytool.log").toFile());
            Process p = pb.start();
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("keytool timed out");
            }
            if (p.exitValue() != 0) throw new IOException("keytool failed: " + Files.readString(dir.resolve("keytool.log")));
        }
        KeyStore store = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(ks.toFile())) {
            store.load(in, PASS);
        }
        X509Certificate cert = (X509Certificate) store.getCertificate(ALIAS);
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(store, PASS);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), new TrustManager[] {new AcceptAnyClient()}, null);
        return new Identity(ctx, cert.getPublicKey().getEncoded());
    }

    /** A fresh RSA public key (SPKI DER) unrelated to the TLS certificate, for --scenario wrong-identity. */
    static byte[] otherKey() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("RSA");
        g.initialize(2048);
        return g.generateKeyPair().getPublic().getEncoded();
    }

    /** Controller trust: any client certificate, or none (strictClient=false). */
    static final class AcceptAnyClient extends X509ExtendedTrustManager {
        @Override public void checkClientTrusted(X509Certificate[] c, String a, java.net.Socket s) { }
        @Override public void checkServerTrusted(X509Certificate[] c, String a, java.net.Socket s) { }
        @Override public void checkClientTrusted(X509Certificate[] c, String a, SSLEngine e) { }
        @Override public void checkServerTrusted(X509Certificate[] c, String a, SSLEngine e) { }
        @Override public void checkClientTrusted(X509Certificate[] c, String a) { }
        @Override public void checkServerTrusted(X509Certificate[] c, String a) { }
        @Override public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
    }
}
