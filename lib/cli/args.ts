/**
 * What every CLI command shares: where its output goes, argument parsing, `--help`, paths
 * given by the operator, and turning errors into one line and an exit code.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseBackupUrl } from "../backends/url.ts";
import { explainOsError } from "../fs/os_error.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { type InterruptScope, NO_INTERRUPTS, runInterruptible } from "./interrupt_scope.ts";

/**
 * Exit codes (documented in the global help, lib/cli/main.ts); an interrupted command exits
 * 128 + the signal's number (interrupt_scope.ts).
 */
export const Exit = { Ok: 0, Failed: 1, Usage: 2, Bug: 3 } as const;

/** Where a command writes: stdout lines, stderr lines, and a terminal status line. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
  /**
   * Rewrites the status line of the terminal stderr is ("" clears it); absent when stderr
   * is not a terminal, where progress would only clutter a log.
   */
  progress?: (text: string) => void;
}

const encoder = new TextEncoder();

export const consoleOutput: Output = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  progress: Deno.stderr.isTerminal()
    ? (text) => Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${text}`))
    : undefined,
};

/** A wrong command line: exit code 2, and a pointer to the command's `--help`. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface CommandSpec {
  name: string;
  /** How its errors start, as "Cannot restore backup"; "Cannot <name>" when not given. */
  action?: string;
  help: string;
  options: Record<string, { type: "string" | "boolean"; multiple?: boolean }>;
  /** The positional arguments, as the usage line names them. */
  positionals: string[];
  /**
   * Other lists of positional arguments the command takes too (init's `<lightning-dir>
   * <url>` of the Python CLI); the command tells the forms apart.
   */
  otherForms?: string[][];
  /**
   * What the command leaves when Ctrl-C or SIGTERM stops it, until it says otherwise
   * (interrupt_scope.ts); absent for a command that the signal's default action may end.
   */
  interrupted?: string;
}

export interface ParsedArgs {
  /** An option with `multiple` holds a `string[]`. */
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Parses `args` as `spec` describes them; `"help"` when they ask for it. */
export function parseCommandArgs(spec: CommandSpec, args: string[]): ParsedArgs | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...spec.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    const message = (error as Error).message;
    // "--to-version -1": node cannot tell a negative value from an option.
    const ambiguous = /^Option '(-[\w-]+)[^']*' argument is ambiguous/.exec(message);
    if (ambiguous) {
      const option = ambiguous[1];
      throw new UsageError(
        `${option} takes a value, and what follows it starts with a dash: write ` +
          `${option}=VALUE if that is its value`,
      );
    }
    // node's messages run on with advice about "--"; the first sentence says what is wrong.
    throw new UsageError(message.split(/\.\s/)[0]);
  }
  if (parsed.values.help) return "help";
  const forms = [spec.positionals, ...spec.otherForms ?? []];
  const form = forms.find((form) => form.length === parsed.positionals.length);
  if (!form) {
    const want = forms.map((form) => form.map((p) => `<${p}>`).join(" ") || "no arguments");
    throw new UsageError(
      `"${spec.name}" takes ${want.join(" or ")}, got ${parsed.positionals.length} argument(s)`,
    );
  }
  // "" resolves to the current directory: a root, backup or backup.lock made there, unseen.
  const unset = "(an unset shell variable?): give it";
  const empty = parsed.positionals.indexOf("");
  if (empty !== -1) throw new UsageError(`"${spec.name}" got an empty <${form[empty]}> ${unset}`);
  for (const [name, value] of Object.entries(parsed.values as Record<string, unknown>)) {
    if (value === "" || (Array.isArray(value) && value.includes(""))) {
      throw new UsageError(`--${name} got an empty value ${unset}`);
    }
  }
  return { values: parsed.values, positionals: parsed.positionals };
}

/** Built-in errors that mean a bug in this program rather than a problem the operator can fix. */
function isBug(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError ||
    error instanceof ReferenceError || error instanceof SyntaxError || !(error instanceof Error);
}

/** One line, phrased like every other error: "<action>: ...", as "Cannot restore backup: ...". */
export function oneLine(action: string, message: string): string {
  const line = message.replace(/\s*\n\s*/g, " ").trim();
  return line.startsWith("Cannot ") ? line : `${action}: ${line}`;
}

/**
 * Parses `args` for the command `spec` describes, answers `--help`, runs `body`, and turns
 * what it throws into one line on stderr and an exit code.
 */
export async function runCommand(
  spec: CommandSpec,
  args: string[],
  output: Output,
  body: (args: ParsedArgs, scope: InterruptScope) => number | Promise<number>,
): Promise<number> {
  try {
    const parsed = parseCommandArgs(spec, args);
    if (parsed === "help") {
      output.out(spec.help);
      return Exit.Ok;
    }
    if (spec.interrupted === undefined) return await body(parsed, NO_INTERRUPTS);
    return await runInterruptible(
      spec.name,
      spec.interrupted,
      output,
      async (scope) => await body(parsed, scope),
    );
  } catch (error) {
    if (error instanceof UsageError) {
      output.err(`Usage error: ${error.message}: see "${cliCommand(spec.name, "--help")}"`);
      return Exit.Usage;
    }
    if (error instanceof Deno.errors.NotCapable) {
      // backup-cli grants each command what lib/cli/permissions.ts lists, and no more.
      output.err(
        `Internal error in "${spec.name}" (a bug in backup-cli's permission table, ` +
          `lib/cli/permissions.ts: please report it; "deno task ${spec.name}" runs the ` +
          `command meanwhile): ${error.message}`,
      );
      return Exit.Bug;
    }
    if (isBug(error)) {
      output.err(
        `Internal error in "${spec.name}" (a bug: please report it with this output): ` +
          `${error instanceof Error ? error.stack : String(error)}`,
      );
      return Exit.Bug;
    }
    const action = spec.action ?? `Cannot ${spec.name}`;
    output.err(oneLine(action, explainOsError(error) ?? (error as Error).message));
    return Exit.Failed;
  }
}

/** The path of the file backup `url` names; other schemes are not supported here yet. */
export function fileBackupPath(url: string, action: string): string {
  const parsed = parseBackupUrl(url);
  if (parsed.scheme !== "file") {
    throw new Error(
      `${action}: "${url}" is a ${parsed.scheme} backup, and this command handles file ` +
        `backups only: use a file:/// URL`,
    );
  }
  return parsed.path;
}

/** Reads a non-negative integer option. */
export function versionArg(value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || !/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UsageError(`--${name} takes a version number (0, 1, 2, ...), not "${value}"`);
  }
  return n;
}
