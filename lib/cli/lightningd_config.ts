/**
 * lightningd's config files as lightningd reads them for the network directory `dir`: the
 * base directory's `config`, then the network directory's, each `include PATH` line
 * (relative to its file's directory) read in its place. Checked against lightningd's
 * configdir.c: a missing top-level file is no error, a missing include is.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { statIfExists } from "../fs/exists.ts";

/** One option line: `name=value`, or `name` alone (a flag such as `clear-plugins`). */
export interface ConfigEntry {
  /** The file it stands in. */
  file: string;
  name: string;
  value: string | undefined;
}

export interface LightningdConfig {
  /** The files read, in order. */
  files: string[];
  /** Their option lines, in the order lightningd applies them. */
  entries: ConfigEntry[];
}

/** How deep lightningd follows `include` lines before it calls it a loop. */
const MOST_INCLUDES = 100;

/** The config of the node whose network directory is `dir`; throws when a file cannot be read. */
export function readLightningdConfig(dir: string): LightningdConfig {
  const config: LightningdConfig = { files: [], entries: [] };
  for (const file of [`${dirname(dir)}/config`, `${dir}/config`]) readFile(file, false, config);
  return config;
}

/** The last line setting `name`, which is the one lightningd goes by. */
export function lastEntry(config: LightningdConfig, name: string): ConfigEntry | undefined {
  return config.entries.findLast((entry) => entry.name === name);
}

function readFile(file: string, mustExist: boolean, config: LightningdConfig, depth = 0): void {
  const info = statIfExists(file);
  if (!info && !mustExist) return;
  // A FIFO would hold the read until something wrote to it.
  if (info && !info.isFile) throw new Error(`"${file}" is not a regular file`);
  const text = Deno.readTextFileSync(file);
  config.files.push(file);
  for (const raw of text.split(/[\r\n]/)) {
    if (raw.startsWith("include ")) {
      if (depth >= MOST_INCLUDES) throw new Error(`"${file}" includes files in a loop`);
      readFile(resolve(dirname(file), raw.slice("include ".length)), true, config, depth + 1);
      continue;
    }
    const match = /^\s*([^#=\s][^=\s]*)\s*(?:=\s*(.*?))?\s*$/.exec(raw);
    if (match) config.entries.push({ file, name: match[1], value: match[2] });
  }
}
