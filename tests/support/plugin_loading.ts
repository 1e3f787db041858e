/**
 * How lightningd finds the plugins it starts, for the fake lightningd to load the plugin the
 * ways an operator configures it: `plugin=` and `important-plugin=` lines in the config
 * files (the base dir's `config`, then the network dir's), `--plugin` and
 * `--important-plugin` on its command line, and every executable in the plugins directory
 * `<base dir>/plugins`, symlinks followed. lightningd runs each by the path it found, with
 * the network directory as its working directory.
 *
 * @module
 */
import { dirname } from "node:path";

export interface PluginToLoad {
  /** The path lightningd runs: as configured, or the entry in the plugins directory. */
  path: string;
  /** Loaded with `important-plugin`: lightningd stops when it dies. */
  important: boolean;
}

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path); // Follows a symlink, as lightningd's stat does.
    return info.isFile && info.mode !== null && (info.mode & 0o111) !== 0;
  } catch {
    return false; // A dangling symlink: lightningd skips it too.
  }
}

function fromOption(key: string, value: string): PluginToLoad | undefined {
  if (key === "plugin") return { path: value, important: false };
  if (key === "important-plugin") return { path: value, important: true };
  return undefined;
}

function configPlugins(file: string): PluginToLoad[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return text.split("\n").flatMap((line) => {
    const match = /^\s*([a-z-]+)=(.*?)\s*$/.exec(line);
    const plugin = match && fromOption(match[1], match[2]);
    return plugin ? [plugin] : [];
  });
}

/** The plugins lightningd starts for the network directory `networkDir`, given `argv`. */
export function pluginsToLoad(networkDir: string, argv: string[] = []): PluginToLoad[] {
  const base = dirname(networkDir);
  const plugins = [`${base}/config`, `${networkDir}/config`].flatMap(configPlugins);
  for (const arg of argv) {
    const match = /^--([a-z-]+)=(.*)$/.exec(arg);
    const plugin = match && fromOption(match[1], match[2]);
    if (plugin) plugins.push(plugin);
  }
  const pluginDir = `${base}/plugins`;
  try {
    for (const entry of [...Deno.readDirSync(pluginDir)].sort((a, b) => a.name < b.name ? -1 : 1)) {
      const path = `${pluginDir}/${entry.name}`;
      if (!entry.name.startsWith(".") && isExecutableFile(path)) {
        plugins.push({ path, important: false });
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return plugins;
}
