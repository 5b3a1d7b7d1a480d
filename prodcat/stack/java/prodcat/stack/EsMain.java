package prodcat.stack;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.config.Configurator;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.Node;
import org.elasticsearch.node.ProdcatNode;
import org.elasticsearch.transport.netty4.Netty4Plugin;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Runs a single-node Elasticsearch from Maven jars (no distribution, no security manager).
 * Usage: EsMain HOME HTTP_PORT TRANSPORT_PORT. HOME gets config/, data/ and logs/.
 * Logs go to HOME/logs/prodcat.log; stdout is silent and stderr only carries a fatal startup error.
 */
public final class EsMain {

    // ES reads every log4j2*.properties in the config dir and refuses to start without one.
    private static final String LOG4J = String.join("\n",
        "status = error",
        "appender.file.type = RollingFile",
        "appender.file.name = file",
        "appender.file.fileName = ${sys:es.logs.base_path}${sys:file.separator}${sys:es.logs.cluster_name}.log",
        "appender.file.filePattern = ${sys:es.logs.base_path}${sys:file.separator}${sys:es.logs.cluster_name}-%i.log",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 50MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 2",
        "rootLogger.level = info",
        "rootLogger.appenderRef.file.ref = file",
        "");

    public static void main(String[] args) throws Exception {
        // ES's log setup redirects System.err into the log file; keep the real one for fatal errors.
        PrintStream stderr = System.err;
        Path home = Path.of(args[0]).toAbsolutePath();
        Path config = Files.createDirectories(home.resolve("config"));
        Files.writeString(config.resolve("log4j2.properties"), LOG4J);

        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "prodcat")
            .put("node.name", "prodcat-es")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", args[2])
            // Dev disks are often nearly full; the default 85/90/95% watermarks would block shards.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();
        Environment env = new Environment(settings, config);

        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName("prodcat-es");
        LogConfigurator.configure(env, false);

        Node node;
        try {
            node = new ProdcatNode(env, List.of(Netty4Plugin.class, RootInfoPlugin.class));
        } catch (Exception e) {
            // e.g. the data dir is locked by another node still running on the same HOME.
            stderr.println("elasticsearch failed to start: " + e);
            System.exit(1);
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM/SIGINT: close the node (flushes shards, frees the ports), then stop log4j.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.prepareForClose();
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                Configurator.shutdown((LoggerContext) LogManager.getContext(false));
                stopped.countDown();
            }
        }, "prodcat-es-shutdown"));
        try {
            node.start();
        } catch (Exception e) {
            // e.g. a port already in use: say so on the real stderr and exit non-zero (the hook closes the node).
            stderr.println("elasticsearch failed to start: " + e);
            System.exit(1);
        }
        // ES worker threads are daemons; this non-daemon wait keeps the JVM up until a signal.
        stopped.await();
    }
}
