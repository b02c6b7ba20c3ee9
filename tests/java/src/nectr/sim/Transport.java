package nectr.sim;

import java.io.IOException;

/** Carries chunk frames ([u16 header][payload]) to the agent. Received bytes go to SimChannel.feed. */
interface Transport {
    /** Sends one complete chunk frame (header included). */
    void sendFrame(byte[] frame) throws IOException;

    /** Orderly close of the transport (WS close frame / TLS close). */
    void close();

    /** Abrupt close: just drop the TCP connection. */
    void abort();

    String name();
}
