package org.elasticsearch.plugins;

import org.elasticsearch.Version;
import org.elasticsearch.action.admin.cluster.node.info.PluginsAndModules;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.jdk.ModuleQualifiedExportsService;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A PluginsService whose plugins are classes already on the classpath (no modules/ or plugins/ dirs).
 * It lives in this package because LoadedPlugin and loadPlugin(...) are package-private.
 */
public class ClasspathPluginsService extends PluginsService {

    private final List<LoadedPlugin> classpathPlugins;
    private final PluginsAndModules classpathInfo;

    public ClasspathPluginsService(Settings settings, Path configPath, List<Class<? extends Plugin>> pluginClasses) {
        // null module/plugin dirs: the base class then loads nothing from disk.
        super(settings, configPath, null, null);
        List<LoadedPlugin> loaded = new ArrayList<>();
        List<PluginRuntimeInfo> infos = new ArrayList<>();
        for (Class<? extends Plugin> pluginClass : pluginClasses) {
            PluginDescriptor descriptor = new PluginDescriptor(
                pluginClass.getName(), "classpath plugin", "NA", Version.CURRENT.toString(), "17",
                pluginClass.getName(), null, List.of(), false, false, false, false);
            loaded.add(new LoadedPlugin(descriptor, loadPlugin(pluginClass, settings, configPath)));
            infos.add(new PluginRuntimeInfo(descriptor));
        }
        this.classpathPlugins = List.copyOf(loaded);
        this.classpathInfo = new PluginsAndModules(infos, List.of());
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return classpathPlugins;
    }

    @Override
    public PluginsAndModules info() {
        return classpathInfo;
    }

    @Override
    protected void addServerExportsService(Map<String, List<ModuleQualifiedExportsService>> qualifiedExports) {
        // The server runs from the classpath (unnamed module), so there are no module exports to wire.
    }
}
