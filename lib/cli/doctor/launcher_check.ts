/**
 * The launcher check: the program the config loads exists, is executable, and, when it is
 * init's launcher script, runs a Deno and a plugin that exist and last; lightningd's user may
 * run each, read the script and the plugin, and reach them all.
 *
 * @module
 */
import { dirname } from "node:path";
import { statIfExists } from "../../fs/exists.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { COMPILED_PLUGIN_NAME, LAUNCHER_NAME, parseLauncher } from "../launcher.ts";
import type { CheckResult, Found } from "./check.ts";
import { allows, describeUser, unreachableProblem } from "./node_user.ts";
import { backupKind } from "../../backends/open.ts";

function isExecutableFile(info: Deno.FileInfo | undefined): boolean {
  return info !== undefined && info.isFile && info.mode !== null && (info.mode & 0o111) !== 0;
}

/**
 * Why lightningd's user cannot reach `path`, or may not read (4), run (1) or both (5) it, and
 * what `fix` to run then; `undefined` when it may. doctor often runs as root, who may whatever
 * the bits say.
 */
function deniedToNode(found: Found, path: string, what: number, fix: string): string | undefined {
  const unreachable = unreachableProblem(path, found.user);
  if (unreachable) return unreachable;
  if (allows(Deno.statSync(path), found.user, what)) return undefined;
  const verb = what === 4 ? "read" : what === 1 ? "run" : "read and run";
  return `${describeUser(found.user)} may not ${verb} "${path}": run "${fix}"`;
}

export function launcherCheck(found: Found): CheckResult {
  const program = found.program ?? `${found.dir}/${LAUNCHER_NAME}`;
  const info = statIfExists(program);
  if (!info) {
    // The Python plugin's set-up: upgrade converts its .dbak and writes the launcher.
    if (found.url?.scheme === "file" && backupKind(found.url.path) === "v1") {
      return [
        "FAIL",
        `"${program}" is missing, so lightningd cannot start the plugin: upgrade writes it ` +
        `when it converts the Python plugin's v1 backup that backup.lock names (see backend)`,
      ];
    }
    return [
      "FAIL",
      `"${program}" is missing, so lightningd cannot start the plugin: init writes it; ` +
      `to write it again for the backup backup.lock names, move backup.lock aside and run ` +
      `init --existing with its URL (the node's database must be at the backup's version)`,
    ];
  }
  if (!isExecutableFile(info)) {
    return ["FAIL", `"${program}" is not executable: run "chmod 755 ${shellQuote(program)}"`];
  }
  const compiled = program.endsWith(`/${COMPILED_PLUGIN_NAME}`);
  // A script is read by its shell as well as run.
  const denied = deniedToNode(found, program, compiled ? 1 : 5, `chmod 755 ${shellQuote(program)}`);
  if (denied) return ["FAIL", `lightningd cannot start the plugin: ${denied}`];
  if (compiled) {
    return ["OK", `"${program}" is the compiled plugin (deno task compile:plugin)`];
  }
  const parsed = parseLauncher(Deno.readTextFileSync(program));
  if (!parsed) {
    return [
      "FAIL",
      `"${program}" is not a launcher written by init (no exec line naming deno): write ` +
      `it again (see the launcher line)`,
    ];
  }
  found.launcher = parsed;
  if (!isExecutableFile(statIfExists(parsed.deno))) {
    return [
      "FAIL",
      `"${program}" runs "${parsed.deno}", which is not an executable file (deno moved or ` +
      `was removed?): install Deno there again, or edit the path in the launcher`,
    ];
  }
  const plugin = parsed.args.at(-1) ?? "";
  if (!statIfExists(plugin)) {
    return [
      "FAIL",
      `"${program}" runs "${plugin}", which is missing (the project moved?): edit the path ` +
      `in the launcher`,
    ];
  }
  // Deno and the checkout, say in root's home, must be lightningd's user's to run and read.
  const runtimeDenied =
    deniedToNode(found, parsed.deno, 1, `chmod 755 ${shellQuote(parsed.deno)}`) ??
      deniedToNode(found, plugin, 4, `chmod -R a+rX ${shellQuote(dirname(plugin))}`);
  if (runtimeDenied) return ["FAIL", `"${program}" cannot start the plugin: ${runtimeDenied}`];
  if (parsed.deno.includes("/_npx/")) {
    return [
      "WARN",
      `"${program}" runs Deno from npx's cache ("${parsed.deno}"), which npm may clean at ` +
      `any time, and then lightningd cannot start the plugin: run "npm install ` +
      `--no-save deno@2.9.6" in the checkout and put node_modules/deno/deno's absolute path in the launcher`,
    ];
  }
  return ["OK", `"${program}" runs ${parsed.deno} ${plugin}`];
}
