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
 * is thrown as `failure(cause)`, Deno's first line. Other errors pass through.
 */
export async function ownCode<T>(
  loading: Promise<T>,
  failure: (cause: string) => string,
): Promise<T> {
  try {
    return await loading;
  } catch (error) {
    // Deno's loader and parser errors are TypeErrors; a denied read is NotCapable, said elsewhere.
    if (!(error instanceof TypeError)) throw error;
    // deno-lint-ignore no-control-regex
    const cause = error.message.split("\n")[0].replace(/\x1b\[[0-9;]*m/g, "").trim();
    throw new Error(failure(cause));
  }
}
