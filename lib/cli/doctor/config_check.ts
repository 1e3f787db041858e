/**
 * The config check: DIR/config or DIR/../config loads the plugin as `important-plugin=`, so
 * lightningd stops rather than run on without a backup, and no longer loads the Python one.
 *
 * @module
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { COMPILED_PLUGIN_NAME, LAUNCHER_NAME } from "../launcher.ts";
import type { CheckResult, Found } from "./check.ts";

interface ConfigLine {
  file: string;
  key: "plugin" | "important-plugin";
  value: string;
  path: string;
}

function configLines(dir: string): { files: string[]; lines: ConfigLine[] } {
  const files: string[] = [];
  const lines: ConfigLine[] = [];
  for (const file of [`${dir}/config`, `${dirname(dir)}/config`]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    files.push(file);
    for (const raw of text.split("\n")) {
      const match = /^\s*(important-plugin|plugin)\s*=\s*(.*?)\s*$/.exec(raw);
      if (!match) continue;
      const value = match[2];
      const home = Deno.env.get("HOME");
      const expanded = value.startsWith("~/") && home ? `${home}${value.slice(1)}` : value;
      const path = isAbsolute(expanded) ? expanded : resolve(dirname(file), expanded);
      lines.push({ file, key: match[1] as ConfigLine["key"], value, path });
    }
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
  let config: ReturnType<typeof configLines>;
  try {
    config = configLines(found.dir);
  } catch (error) {
    return ["FAIL", `cannot read the lightningd config: ${(error as Error).message}`];
  }
  const loading = config.lines.filter((l) => ours.some((p) => samePath(l.path, p)));
  const important = loading.find((l) => l.key === "important-plugin");
  found.program = important?.path ?? loading[0]?.path ?? launcher;
  const python = config.lines.find((l) => /(^|\/)backup\.py$/.test(l.value));
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
  if (important) return ["OK", `${important.file} has important-plugin=${important.value}`];
  if (loading.length > 0) {
    const line = loading[0];
    return [
      "FAIL",
      `${line.file} loads the plugin with plugin=, so lightningd would run on without a ` +
      `backup if the plugin died: change the line to important-plugin=${line.value}`,
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
