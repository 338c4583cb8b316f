import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.temporal.internal.testservice.GRPCServerHelper;
import io.temporal.internal.testservice.StickyQueueReset;
import io.temporal.internal.testservice.TestServicesStarter;
import java.net.InetAddress;
import java.net.InetSocketAddress;

/**
 * The Temporal time-skipping test server, listening on 127.0.0.1 only. Same arguments and behaviour as the stock
 * io.temporal.testserver.TestServer (`<port> [--enable-time-skipping]`, time skipping locked until a client unlocks
 * it), which binds every interface instead, and with ResetStickyTaskQueue answered (./StickyQueueReset.java) so a test can
 * stop a worker and start another. Compiled against the test server's jars when the cache entry is built
 * (scripts/temporal/test-server.ts).
 */
public final class LoopbackTestServer {
  public static void main(String[] args) throws Exception {
    if (args.length < 1 || args.length > 2) {
      System.err.println("Usage: LoopbackTestServer <port> [--enable-time-skipping]");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    boolean enableTimeSkipping = args.length == 2 && "--enable-time-skipping".equalsIgnoreCase(args[1]);
    TestServicesStarter services = new TestServicesStarter(!enableTimeSkipping, 0);
    NettyServerBuilder builder = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), port));
    GRPCServerHelper.registerServicesAndHealthChecks(StickyQueueReset.servicesWithStickyQueueReset(services), builder);
    Server server = builder.build().start();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.shutdownNow();
      services.close();
    }));
    server.awaitTermination();
  }
}
