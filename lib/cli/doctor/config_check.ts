/**
 * The config check: DIR/config or DIR/../config (or a file they include) loads the plugin as
 * `important-plugin=`, so lightningd stops rather than run on without a backup; no
 * `disable-plugin=` or later `clear-plugins` undoes that; and it no longer loads the Python one.
 *
 * @module
 */
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { readLightningdConfig } from "../lightningd_config.ts";
import { COMPILED_PLUGIN_NAME, LAUNCHER_NAME } from "../launcher.ts";
import type { CheckResult, Found } from "./check.ts";

interface ConfigLine {
  file: string;
  key: "plugin" | "important-plugin" | "disable-plugin";
  value: string;
  path: string;
  /** The file whose `clear-plugins` line, after this one, drops it. */
  clearedIn?: string;
}

interface Config {
  files: string[];
  lines: ConfigLine[];
}

/**
 * The plugin lines of the config, in lightningd's order: a `clear-plugins` line unloads the
 * plugins loaded before it (not those disabled).
 */
function configLines(dir: string): Config {
  const { files, entries } = readLightningdConfig(dir);
  const lines: ConfigLine[] = [];
  for (const { file, name, value } of entries) {
    if (name === "clear-plugins" && value === undefined) {
      for (const line of lines) if (line.key !== "disable-plugin") line.clearedIn ??= file;
      continue;
    }
    if (!["important-plugin", "plugin", "disable-plugin"].includes(name) || value === undefined) {
      continue;
    }
    const home = Deno.env.get("HOME");
    const expanded = value.startsWith("~/") && home ? `${home}${value.slice(1)}` : value;
    const path = isAbsolute(expanded) ? expanded : resolve(dirname(file), expanded);
    lines.push({ file, key: name as ConfigLine["key"], value, path });
  }
  return { files, lines };
}

function samePath(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return Deno.realPathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}

/**
 * The Python plugin in the base dir's `plugins`, which lightningd loads with no config
 * line (its README's other way): `backup.py`, a symlink to one, or a directory holding one
 * (lightningd loads each subdirectory's executables too, plugins_add_default_dir).
 */
function pythonInPluginDir(base: string): string | undefined {
  const pluginDir = `${base}/plugins`;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(pluginDir)];
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    const path = `${pluginDir}/${entry.name}`;
    let target: string;
    try {
      target = Deno.realPathSync(path);
    } catch {
      // A dangling symlink loads nothing.
      continue;
    }
    if (/(^|\/)backup\.py$/.test(target)) return path;
    // lightningd loads the executables of each directory in it too, one level down.
    try {
      if (Deno.statSync(`${target}/backup.py`).isFile) return `${path}/backup.py`;
    } catch {
      // Not the Python plugin's directory.
    }
  }
  return undefined;
}

export function configCheck(found: Found): CheckResult {
  const launcher = `${found.dir}/${LAUNCHER_NAME}`;
  const ours = [launcher, `${found.dir}/${COMPILED_PLUGIN_NAME}`];
  let config: Config;
  try {
    config = configLines(found.dir);
  } catch (error) {
    return ["FAIL", `cannot read the lightningd config: ${(error as Error).message}`];
  }
  const disables = config.lines.filter((l) => l.key === "disable-plugin");
  // lightningd's plugin_paths_match: a name with a "/" is a path, else a file name.
  const disabledBy = (path: string) =>
    disables.find((d) =>
      d.value.includes("/") ? samePath(d.path, path) : basename(path) === d.value
    );
  const loads = config.lines.filter((l) => l.key !== "disable-plugin" && !l.clearedIn);
  const loading = loads.filter((l) => ours.some((p) => samePath(l.path, p)));
  const important = loading.find((l) => l.key === "important-plugin");
  found.program = important?.path ?? loading[0]?.path ?? launcher;
  const python = loads.find((l) => /(^|\/)backup\.py$/.test(l.value) && !disabledBy(l.path));
  if (python) {
    return [
      "FAIL",
      `${python.file} still loads the Python backup plugin (${python.key}=${python.value}): ` +
      `remove that line; it would also hook db_write and read backup.lock`,
    ];
  }
  const autoloaded = pythonInPluginDir(dirname(found.dir));
  if (autoloaded) {
    return [
      "FAIL",
      `"${autoloaded}" loads the Python backup plugin from lightningd's plugin directory at ` +
      `every start: remove it; it would also hook db_write and read backup.lock`,
    ];
  }
  // disable-plugin wins over important-plugin, wherever it stands: lightningd runs on
  // without the plugin, and so without a backup.
  const disabled = loading.length > 0 ? disabledBy(found.program) : undefined;
  if (disabled) {
    return [
      "FAIL",
      `${disabled.file} has disable-plugin=${disabled.value}, so lightningd does not load ` +
      `the plugin at all, even as important-plugin, and runs without a backup: remove that line`,
    ];
  }
  if (important) return ["OK", `${important.file} has important-plugin=${important.value}`];
  if (loading.length > 0) {
    const line = loading[0];
    return [
      "FAIL",
      `${line.file} loads the plugin with plugin=, so lightningd would run on without a ` +
      `backup if the plugin died: change the line to important-plugin=${line.value}`,
    ];
  }
  const cleared = config.lines.find((l) =>
    l.clearedIn && l.key !== "disable-plugin" && ours.some((p) => samePath(l.path, p))
  );
  if (cleared) {
    return [
      "FAIL",
      `${cleared.file}'s ${cleared.key}=${cleared.value} comes before a clear-plugins line in ` +
      `${cleared.clearedIn}, which unloads it, so lightningd runs without a backup: remove ` +
      `clear-plugins, or put the plugin's line after it`,
    ];
  }
  const where = config.files.length === 0
    ? `no config file in "${found.dir}" or "${dirname(found.dir)}"`
    : config.files.length === 1
    ? `${config.files[0]} does not load the plugin`
    : `neither ${config.files.join(" nor ")} loads the plugin`;
  return [
    "FAIL",
    `${where}: add the line important-plugin=${launcher} to ${found.dir}/config and restart ` +
    `lightningd (options given on lightningd's command line are not checked)`,
  ];
}
