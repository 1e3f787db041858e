/**
 * cln-backup's own modules loaded on demand (the plugin's code for `socket:` and `s3://`
 * destinations): where one cannot be loaded (a copy of cln-backup missing a file, a file
 * changed mid-update), Deno's loader error spans several lines with terminal colours; it is
 * said in one line that says what to do.
 *
 * @module
 */

/**
 * `loading`, an `import()` of one of cln-backup's own modules; a module that cannot be loaded
 * is thrown as `failure(cause)`, Deno's first line and the OS's reason, when it gives one.
 * A read the permissions deny passes through.
 */
export async function ownCode<T>(
  loading: Promise<T>,
  failure: (cause: string) => string,
): Promise<T> {
  try {
    return await loading;
  } catch (error) {
    // Loading, parsing, linking (a name another file no longer exports: SyntaxError) and
    // evaluating: each failure is of the code. A denied read is NotCapable, said elsewhere.
    if (error instanceof Deno.errors.NotCapable) throw error;
    const said = String((error as Error)?.message ?? error);
    // deno-lint-ignore no-control-regex
    const [first, ...rest] = said.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
    // An import the OS refused says why on numbered lines ("    0: Permission denied ...").
    const why = rest.map((line) => /^\s*\d+: (.+)$/.exec(line)?.[1]).filter(Boolean);
    const cause = why.length === 0
      ? first.trim()
      : `${first.trim().replace(/\.$/, "")}: ${why.join(": ")}`;
    throw new Error(failure(cause));
  }
}

/**
 * The `failure` of {@linkcode ownCode} for a program the operator runs (a CLI command,
 * backup-cli): its code is installed again, readable by whoever runs it.
 */
export function cannotRun(program: string): (cause: string) => string {
  return (cause) =>
    `Cannot run ${program}: its code cannot be loaded (${cause}): install cln-backup again, ` +
    `each file readable by the user that runs it`;
}
